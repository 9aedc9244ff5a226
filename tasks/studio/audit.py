"""The studio's audit log: HOME/studio/audit/<writer>-<pid>-<n>.ndjson, one file per process, append-only, fsynced per line.

Every login, failed login, lockout, logout and change is one line: who (`actor`), what (`action`), on what
(`target`), from where (`ip`), and details. Never a password, TOTP or recovery code, or a subscriber's
address. Lines are few (people logging in and saving), so each is on disk before the answer goes out.
The aggregate stage does not load these files yet (a later step, like the event logs it loads).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from mailflow.tasks.files.atomic import new_log_file
from mailflow.tasks.studio.users import studio_dir

FORBIDDEN = frozenset({"password", "code", "totp", "secret", "recovery_code", "email"})  # keys never written


def audit_dir(home: Path) -> Path:
    return studio_dir(home) / "audit"


class AuditLog:
    """`log.write(actor, action, target=..., ip=..., **details)`; safe from several threads of one process."""

    def __init__(self, home: Path, writer: str = "studio"):
        self.dir, self.writer = audit_dir(home), writer
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._n = 0

    def write(self, actor: str, action: str, target: str = "", ip: str | None = None, **details) -> dict:
        bad = FORBIDDEN & set(details)
        if bad:
            raise ValueError(f"audit records never carry {sorted(bad)}")
        record = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "actor": actor, "action": action,
                  "target": target, "ip": ip, **details}
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"
        with self._lock:
            if self._fd is None:
                self._open()
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        return record

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd, _, self._n = new_log_file(self.dir, self.writer, self._n)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_audit(home: Path) -> list[dict]:
    """Every record of every writer, oldest first (by time, then file): for tests and `users list --audit` later."""
    records = []
    for path in sorted(audit_dir(home).glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return sorted(records, key=lambda r: r["at"])
