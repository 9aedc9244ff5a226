"""A campaign's control file: a request to stop sending, which every sending process checks.

An `interrupt` (Ctrl-C, SIGTERM) holds for the send it stopped: the next send clears it. A
`pause` or `cancel` (`mailflow campaigns pause|cancel`) holds until `campaigns resume` clears it;
the campaign's lifecycle state (tasks/files/lifecycle.py) says the same, and a send refuses it.
"""

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
INTERRUPT, PAUSE, CANCEL = "interrupt", "pause", "cancel"
HOLDS = (PAUSE, CANCEL)  # requests a new send must not clear


def stop_path(home: Path, campaign_id: str) -> Path:
    return campaign_dir(home, campaign_id) / STOP_FILE


def request_stop(home: Path, campaign_id: str, reason: str, kind: str = INTERRUPT) -> None:
    """Ask every process sending the campaign to take no further recipients (those on the wire finish).

    A file rather than a signal: the send's worker processes see it whichever process was
    signalled (Ctrl-C reaches the whole process group, `kill PID` only the command), and a
    `campaigns pause` from another terminal reaches them without either opening the warehouse.
    An interrupt never replaces a pause or cancel already requested.
    """
    path = stop_path(home, campaign_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == INTERRUPT and stop_kind(home, campaign_id) in HOLDS:
        return
    request = {"kind": kind, "reason": reason, "pid": os.getpid(), "at": datetime.now(UTC).isoformat()}
    atomic_write(path, lambda p: p.write_text(json.dumps(request)))


def stop_requested(home: Path, campaign_id: str) -> bool:
    return stop_path(home, campaign_id).exists()


def stop_kind(home: Path, campaign_id: str) -> str | None:
    """The kind of the standing request (interrupt, pause, cancel), or None when there is none."""
    try:
        request = json.loads(stop_path(home, campaign_id).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return INTERRUPT
    return request.get("kind", INTERRUPT) if isinstance(request, dict) else INTERRUPT


def clear_stop(home: Path, campaign_id: str, holds: bool = False) -> None:
    """Running the command again is how a user resumes an interrupted send: the old request no
    longer holds. A pause or cancel stays unless `holds` (what `campaigns resume` does)."""
    if holds or stop_kind(home, campaign_id) not in HOLDS:
        stop_path(home, campaign_id).unlink(missing_ok=True)


def stop_watch(home: Path, campaign_ids: Iterable[str]) -> Callable[[], bool]:
    """For a command about to send these campaigns: clear their old interrupts, request their
    stop at the first SIGINT/SIGTERM (mailflow.interrupt), and return the check "stop now?"."""
    ids = sorted(set(campaign_ids))
    for campaign_id in ids:
        clear_stop(home, campaign_id)
        interrupt.when_requested(partial(request_stop, home, campaign_id, "interrupted"))
    return lambda: interrupt.requested() or any(stop_requested(home, c) for c in ids)


def held(home: Path, campaign_id: str) -> bool:
    """A pause or cancel stands (not a mere interrupt)."""
    return stop_kind(home, campaign_id) in HOLDS
