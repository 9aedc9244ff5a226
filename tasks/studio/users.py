"""The studio's users: HOME/studio/users.json, replaced whole (0600) under a lock, read again when it changes.

Why a JSON file and not SQLite or the warehouse: a handful of users, changed a few times a day by the CLI
and the running studio; a whole-file rename means a reader never sees half a change, a lock file makes
read-modify-write safe between the two processes, and an admin can read it (it holds hashes, not passwords).
The warehouse is out of the question: the studio must never hold it open (DESIGN: one writer at a time).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.files.suppress import file_id

ROLES = ("viewer", "editor", "sender", "admin")  # each may do what the ones before it may
# Lower-case names without "@": user names appear in the audit log and in URLs, which never carry an email address
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class UserError(ValueError):
    """A change the store refuses (unknown user, name taken, bad name or role): one line for the user."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password: str  # argon2id hash
    totp_secret: str = ""  # base32; "" until enrolled (the first login enrols)
    totp_step: int = 0  # the last TOTP time step accepted: a code is good once
    recovery: tuple[str, ...] = ()  # SHA-256 of the unused recovery codes
    disabled: bool = False
    failures: int = 0  # wrong passwords or codes in a row
    locked_until: float = 0.0  # epoch seconds; 0: not locked
    epoch: int = 0  # sessions carry the epoch of their login: raising it (disable, reset) ends them all
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def enrolled(self) -> bool:
        return bool(self.totp_secret)

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def public(self, now: float) -> dict:
        """What `users list` and the admin page show: no hash, no secret."""
        return {"name": self.name, "role": self.role, "enrolled": self.enrolled, "disabled": self.disabled,
                "locked": self.locked_until > now, "recovery_codes_left": len(self.recovery), "created_at": self.created_at}


def check_name(name: str) -> str:
    if not _USER.fullmatch(name or ""):
        raise UserError(f"user name {name!r}: 1-64 lower-case letters, digits, '.', '_' or '-' (no '@': names are logged)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def studio_dir(home: Path) -> Path:
    return home / "studio"


class UserStore:
    """`get(name)` (cached until the file changes), `all()`, `add(user)`, `update(name, change)`."""

    def __init__(self, home: Path, clock: Callable[[], float] = time.time):
        self.path = studio_dir(home) / "users.json"
        self.clock = clock
        self._stamp: tuple | None = None
        self._users: dict[str, User] = {}

    def _read(self) -> dict[str, User]:
        stamp = file_id(self.path)
        if stamp != self._stamp or stamp is None:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raw = {"users": {}}
            self._users = {name: User(**{**spec, "recovery": tuple(spec.get("recovery", ()))})
                           for name, spec in raw["users"].items()}
            self._stamp = stamp
        return self._users

    def get(self, name: str) -> User | None:
        return self._read().get(name)

    def all(self) -> list[User]:
        return sorted(self._read().values(), key=lambda u: u.name)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, User]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name("users.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the CLI and the studio change users rarely and quickly: waiting is right
            self._stamp = None
            users = dict(self._read())
            yield users
            self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        text = json.dumps({"version": 1, "users": {n: asdict(u) for n, u in sorted(users.items())}}, indent=2)

        def write(tmp: Path) -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())

        atomic_write(self.path, write)
        self._stamp = None

    def add(self, user: User) -> User:
        check_name(user.name)
        check_role(user.role)
        with self._locked() as users:
            if user.name in users:
                raise UserError(f"user {user.name!r} exists already")
            users[user.name] = user
        return user

    def update(self, name: str, change: Callable[[User], User]) -> User:
        """Apply `change` to the user as it is on disk now, under the lock; UserError for an unknown name."""
        with self._locked() as users:
            if name not in users:
                raise UserError(f"no user {name!r}")
            users[name] = change(users[name])
            return users[name]


def revoked(user: User, **changes) -> User:
    """The user changed, and every session of theirs ended."""
    return replace(user, epoch=user.epoch + 1, **changes)


def reset_totp(user: User) -> User:
    """TOTP and recovery codes forgotten and the lockout lifted: they enrol again at their next login."""
    return revoked(user, totp_secret="", totp_step=0, recovery=(), failures=0, locked_until=0.0)


def disable(user: User) -> User:
    return revoked(user, disabled=True)


# The changes an admin makes to another user (the CLI's and the users page's): name -> (change, audit action)
CHANGES = {"reset-totp": (reset_totp, "user.reset_totp"), "disable": (disable, "user.disable")}
