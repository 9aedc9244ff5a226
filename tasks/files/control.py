"""A campaign's control file: a request to stop sending, which every sending process checks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from mailflow import interrupt
from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.files.manifest import campaign_dir

STOP_FILE = "stop"


def stop_path(home: Path, campaign_id: str) -> Path:
    return campaign_dir(home, campaign_id) / STOP_FILE


def request_stop(home: Path, campaign_id: str, reason: str) -> None:
    """Ask every process sending the campaign to take no further recipients (those on the wire finish).

    A file rather than a signal: the send's worker processes see it whichever process was
    signalled (Ctrl-C reaches the whole process group, `kill PID` only the command).
    """
    path = stop_path(home, campaign_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    request = {"reason": reason, "pid": os.getpid(), "at": datetime.now(UTC).isoformat()}
    atomic_write(path, lambda p: p.write_text(json.dumps(request)))


def stop_requested(home: Path, campaign_id: str) -> bool:
    return stop_path(home, campaign_id).exists()


def clear_stop(home: Path, campaign_id: str) -> None:
    """Running the command again is how a user resumes: the old request no longer holds."""
    stop_path(home, campaign_id).unlink(missing_ok=True)


def stop_watch(home: Path, campaign_ids: Iterable[str]) -> Callable[[], bool]:
    """For a command about to send these campaigns: clear their old stop requests, request their
    stop at the first SIGINT/SIGTERM (mailflow.interrupt), and return the check "stop now?"."""
    ids = sorted(set(campaign_ids))
    for campaign_id in ids:
        clear_stop(home, campaign_id)
        interrupt.when_requested(partial(request_stop, home, campaign_id, "interrupted"))
    return lambda: interrupt.requested() or any(stop_requested(home, c) for c in ids)
