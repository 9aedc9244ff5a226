"""Fetch new bounce mail from an IMAP mailbox once each: UIDVALIDITY + last-UID state, processed mail moved aside."""

from __future__ import annotations

import imaplib
import json
import os
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.files.atomic import atomic_write, fsync_dir

PASSWORD_ENV = "MAILFLOW_BOUNCES__IMAP__PASSWORD"
PORTS = {"imaps": 993, "imap": 143}
UID_IN_FETCH = re.compile(rb"UID (\d+)")
# What a broken or dropped connection raises, in imaplib, ssl and the socket below them.
CONNECTION_ERRORS = (imaplib.IMAP4.error, OSError, EOFError)


@dataclass(frozen=True)
class Account:
    scheme: str
    host: str
    port: int
    user: str
    mailbox: str

    @property
    def key(self) -> str:
        """The state file's key: a new server, user or mailbox starts its own UID sequence."""
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.mailbox}"


@dataclass
class FetchReport:
    fetched: int = 0  # messages handed to the handler this run
    moved: int = 0  # messages moved to the processed folder (including ones a crashed run had committed)
    uidvalidity: int = 0
    last_uid: int = 0  # the committed state after this run
    rescanned: bool = False  # the mailbox's UIDVALIDITY changed: every message in it was looked at again


def parse_url(url: str) -> Account:
    """`imaps://user@host[:port][/mailbox]` (TLS, the default) or `imap://…` (STARTTLS, required)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in PORTS:
        raise MailflowError(f"bounces.imap.url: {url!r} is not an imaps:// or imap:// URL")
    if not parts.hostname or not parts.username:
        raise MailflowError(f"bounces.imap.url: {url!r} needs a user and a host (imaps://user@host/INBOX)")
    if parts.password is not None:
        raise MailflowError(f"bounces.imap.url: holds a password; set {PASSWORD_ENV} instead")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError:
        raise MailflowError(f"bounces.imap.url: {url!r} has a bad port") from None
    return Account(parts.scheme, parts.hostname, port, unquote(parts.username), unquote(parts.path.strip("/")) or "INBOX")


def state_file(home: Path) -> Path:
    return home / "bounces" / "imap-state.json"


def read_state(path: Path) -> dict[str, dict[str, int]]:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
        return {k: {"uidvalidity": int(v["uidvalidity"]), "last_uid": int(v["last_uid"])} for k, v in state.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise MailflowError(f"{path}: not a mailflow IMAP state file (delete it to fetch the mailbox again)") from None


def write_state(path: Path, state: dict[str, dict[str, int]]) -> None:
    """Whole or not at all, and on disk before returning: a crash never loses or half-writes a commit."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w") as out:
            json.dump(state, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())

    atomic_write(path, write)
    fsync_dir(path.parent)  # the rename itself


def fetch_configured(settings: Settings, handler: Callable[[bytes, str], object],
                     commit: Callable[[], object] | None = None) -> FetchReport:
    """`fetch_new` with `[bounces.imap]` settings; its state file lives under the home."""
    if not settings.bounce_imap_url:
        raise MailflowError("bounces.imap.url: not set (e.g. imaps://bounces@mail.example.com/INBOX)")
    if not settings.bounce_imap_password:
        raise MailflowError(f"bounces.imap.password: not set; set {PASSWORD_ENV}")
    return fetch_new(settings.bounce_imap_url, settings.bounce_imap_password.reveal(), state_file(settings.home),
                     handler, processed_folder=settings.bounce_imap_processed_folder, timeout=settings.smtp.timeout,
                     commit=commit)


def fetch_new(url: str, password: str, state_path: Path, handler: Callable[[bytes, str], object], *,
              processed_folder: str = "Processed", batch: int = 500, timeout: float = 30.0,
              tls: ssl.SSLContext | None = None, commit: Callable[[], object] | None = None) -> FetchReport:
    """Hand each message not yet processed to `handler(raw, source)`, in UID order, then commit and move it.

    Per batch: fetch (BODY.PEEK[], so nothing is marked read), handle every message, call `commit`
    (once per batch: e.g. fsync what the handler wrote), write the state (UIDVALIDITY, last UID)
    durably, then move the batch to `processed_folder` ("" leaves mail where it is). The
    handler's output must be durable once `commit` returns (or `handler` returns, without one): a crash
    before the state write repeats that batch once in the next run, so the handler must be
    idempotent (key its output by `source`, which names the mailbox, UIDVALIDITY and UID). A crash
    after the state write but before the move is tidied by the next run, which moves committed
    UIDs left in the mailbox without handling them again. Nothing is ever deleted except by a
    move (COPY + \\Deleted + UID EXPUNGE of those UIDs only, where the server lacks MOVE).
    """
    try:
        return _fetch_new(url, password, state_path, handler, processed_folder, batch, timeout, tls, commit)
    except _HandlerFailed as failed:
        raise failed.__cause__ from None  # the handler's own error, not mistaken for a dropped connection


class _HandlerFailed(Exception):
    """Carries the handler's exception past `_session`, which turns OSError & co. into connection errors."""


def _fetch_new(url: str, password: str, state_path: Path, handler: Callable[[bytes, str], object],
               processed_folder: str, batch: int, timeout: float, tls: ssl.SSLContext | None,
               commit: Callable[[], object] | None = None) -> FetchReport:
    account = parse_url(url)
    report = FetchReport()
    state = read_state(state_path)
    with _session(account, password, timeout, tls or ssl.create_default_context(), report) as imap:
        report.uidvalidity = _select(imap, account)
        saved = state.get(account.key)
        if saved is not None and saved["uidvalidity"] != report.uidvalidity:
            report.rescanned = True  # UIDs of the old UIDVALIDITY say nothing about the new ones
            saved = None
        last_uid = saved["last_uid"] if saved else 0
        if processed_folder:
            _create(imap, processed_folder)
            if last_uid:
                # UNDELETED: without UIDPLUS a copied message stays, flagged, until someone expunges
                report.moved += _move(imap, _search(imap, 1, last_uid, "UNDELETED"), processed_folder)
        pending = [uid for uid in _search(imap, last_uid + 1) if uid > last_uid]
        for start in range(0, len(pending), batch):
            uids = pending[start:start + batch]
            messages = _fetch(imap, uids)
            for uid in uids:
                if uid in messages:  # gone since the search (another client): nothing to process
                    try:
                        handler(messages[uid], f"{account.key};UIDVALIDITY={report.uidvalidity}/;UID={uid}")
                    except Exception as e:
                        raise _HandlerFailed() from e
                    report.fetched += 1
            if commit is not None:
                try:
                    commit()
                except Exception as e:
                    raise _HandlerFailed() from e
            last_uid = uids[-1]
            state[account.key] = {"uidvalidity": report.uidvalidity, "last_uid": last_uid}
            write_state(state_path, state)
            report.last_uid = last_uid
            if processed_folder:
                report.moved += _move(imap, uids, processed_folder)
        report.last_uid = last_uid
    return report


@contextmanager
def _session(account: Account, password: str, timeout: float, tls: ssl.SSLContext,
             report: FetchReport) -> Iterator[imaplib.IMAP4]:
    imap = None
    try:
        if account.scheme == "imaps":
            imap = imaplib.IMAP4_SSL(account.host, account.port, ssl_context=tls, timeout=timeout)
        else:
            imap = imaplib.IMAP4(account.host, account.port, timeout=timeout)
            if "STARTTLS" not in imap.capabilities:
                raise MailflowError(f"bounces.imap.url: {account.host}:{account.port} offers no STARTTLS; "
                                    "mailflow never logs in without TLS (use imaps://)")
            imap.starttls(tls)
        try:
            imap.login(account.user, password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as e:
            raise MailflowError(f"bounces.imap: login as {account.user} at {account.host} refused: {_text(e)} "
                                f"(password from {PASSWORD_ENV})") from None
        # Servers announce more (MOVE, UIDPLUS) after login than in their greeting, which imaplib keeps.
        _, capabilities = imap.capability()
        imap.capabilities = tuple(capabilities[-1].decode("ascii", "replace").upper().split())
        yield imap
    except CONNECTION_ERRORS as e:
        raise MailflowError(f"bounces.imap: {account.host}:{account.port}: {type(e).__name__}: {_text(e)} "
                            f"after {report.fetched} message(s); committed up to UID {report.last_uid}, "
                            "the next run resumes there") from None
    finally:
        if imap is not None:
            try:
                imap.logout()
            except CONNECTION_ERRORS:
                pass  # already gone: nothing left to close politely


def _select(imap: imaplib.IMAP4, account: Account) -> int:
    typ, data = imap.select(_quote(account.mailbox))
    if typ != "OK":
        raise MailflowError(f"bounces.imap.url: mailbox {account.mailbox!r} cannot be opened: {_text(data)}")
    _, values = imap.response("UIDVALIDITY")
    if not values or values[0] is None:
        raise MailflowError(f"bounces.imap: the server gave no UIDVALIDITY for {account.mailbox!r}")
    return int(values[-1])


def _search(imap: imaplib.IMAP4, first: int, last: int | None = None, also: str = "") -> list[int]:
    # `first:*` always matches the highest UID, even below `first`: the caller filters.
    typ, data = imap.uid("SEARCH", f"UID {first}:{last if last else '*'} {also}".strip())
    _check(typ, data, "UID SEARCH")
    return sorted({int(n) for line in data if line for n in line.split()})


def _fetch(imap: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    typ, data = imap.uid("FETCH", _set(uids), "(UID BODY.PEEK[])")
    _check(typ, data, "UID FETCH")
    found = {}
    for item in data:
        if isinstance(item, tuple) and (uid := UID_IN_FETCH.search(item[0])):
            found[int(uid.group(1))] = item[1]
    return found


def _create(imap: imaplib.IMAP4, folder: str) -> None:
    typ, data = imap.create(_quote(folder))
    if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if isinstance(d, bytes)).upper():
        _, listed = imap.list('""', _quote(folder))
        if not any(listed):
            raise MailflowError(f"bounces.imap.processed_folder: cannot create {folder!r}: {_text(data)}")


def _move(imap: imaplib.IMAP4, uids: list[int], folder: str) -> int:
    if not uids:
        return 0
    if "MOVE" in imap.capabilities:
        typ, data = imap.uid("MOVE", _set(uids), _quote(folder))
        _check(typ, data, "UID MOVE")
        return len(uids)
    typ, data = imap.uid("COPY", _set(uids), _quote(folder))
    _check(typ, data, "UID COPY")
    typ, data = imap.uid("STORE", _set(uids), "+FLAGS.SILENT", r"(\Deleted)")
    _check(typ, data, "UID STORE")
    if "UIDPLUS" in imap.capabilities:  # a plain EXPUNGE would also remove others' \Deleted mail
        typ, data = imap.uid("EXPUNGE", _set(uids))
        _check(typ, data, "UID EXPUNGE")
    return len(uids)


def _set(uids: list[int]) -> str:
    """A compact UID set: 1,2,3,7 -> 1:3,7 (10,000 UIDs stay one short command line)."""
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: list, command: str) -> None:
    if typ != "OK":
        raise MailflowError(f"bounces.imap: {command} failed: {_text(data)}")


def _text(value: object) -> str:
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip() or "(no text)"
