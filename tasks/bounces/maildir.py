"""Fetch new bounce mail from a local Maildir once each: handled, made durable, then moved to `.Processed/cur/`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.atomic import fsync_dir

PROCESSED = ".Processed"  # a Maildir++ subfolder: IMAP servers (Dovecot, Courier) show it as "Processed"


@dataclass
class MaildirReport:
    fetched: int = 0  # messages handed to the handler this run
    moved: int = 0  # messages moved to the processed folder


def maildir_path(home: Path, setting: str) -> Path | None:
    """`[bounces] maildir`: None when unset; `~` expanded; a relative path is relative to the home."""
    if not setting.strip():
        return None
    path = Path(setting.strip()).expanduser()
    return path if path.is_absolute() else home / path


def check_maildir(path: Path) -> None:
    if not ((path / "new").is_dir() and (path / "cur").is_dir()):
        raise MailflowError(f"bounces.maildir: {path} is not a Maildir (no new/ and cur/ folders in it)")
    if not os.access(path / "new", os.R_OK | os.W_OK | os.X_OK) or not os.access(path / "cur", os.R_OK | os.W_OK | os.X_OK):
        raise MailflowError(f"bounces.maildir: {path}: new/ or cur/ not readable and writable (mail is moved once handled)")


def fetch_maildir(path: Path, handler: Callable[[bytes, str], object], commit: Callable[[], object] | None = None, *,
                  batch: int = 500) -> MaildirReport:
    """Hand each message of `new/` and `cur/` to `handler(raw, source)`, then move it to `.Processed/cur/`.

    Per batch: handle every message, call `commit` (which makes the handler's output durable), then
    move the batch (a rename, on the same file system) and fsync the folders. Mail is never deleted. A
    crash before the moves hands the batch to the handler again in the next run: the handler must be
    idempotent (mailflow's bounce events are keyed by the message's bytes). `tmp/` (deliveries still being
    written) and the processed folder itself are never read. A message that vanished since the listing
    (another reader took it) is skipped.
    """
    check_maildir(path)
    done = path / PROCESSED / "cur"
    for sub in ("cur", "new", "tmp"):
        (path / PROCESSED / sub).mkdir(parents=True, exist_ok=True)
    report = MaildirReport()
    pending = [f for sub in ("new", "cur") for f in sorted((path / sub).iterdir(), key=lambda p: p.name)
               if not f.name.startswith(".") and f.is_file()]
    for start in range(0, len(pending), batch):
        handled = []
        for file in pending[start:start + batch]:
            try:
                raw = file.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise MailflowError(f"bounces.maildir: {file}: cannot read ({exc.strerror or exc})") from None
            handler(raw, str(file))
            report.fetched += 1
            handled.append(file)
        if commit is not None:
            commit()
        for file in handled:
            try:
                os.replace(file, done / _cur_name(file.name))
            except FileNotFoundError:
                continue
            report.moved += 1
        for folder in {f.parent for f in handled} | {done}:
            fsync_dir(folder)
    return report


def _cur_name(name: str) -> str:
    """A message moved from new/ gets Maildir's info suffix (`:2,S`: seen), as a mail client would; flags kept."""
    return name if ":2," in name else name + ":2,S"

