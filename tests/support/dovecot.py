"""A private Dovecot for integration tests: its own config, passwd-file user and Maildir under one temp dir, loopback only."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from mailflow.tasks.demo.receiver import free_port
from tests.support.postfix_instance import poll
from tests.support.tls import make_certificate

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
DOVECOT = shutil.which("dovecot", path=SBIN)
USER, PASSWORD = "bounces", "imap-test-password"
WAIT = 30.0  # seconds: generous bounds for polls, never a timing assertion

# Everything this instance needs, so nothing is read from /etc/dovecot. Login and auth processes
# run as the package's dovenull/dovecot users; mail is owned by `nobody` (first_valid_uid lowered).
CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = mailflow-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_max_userip_connections = 100
{capability}service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def unavailable() -> str | None:
    """Why a private Dovecot cannot run here, or None."""
    if DOVECOT is None:
        return "Dovecot is not installed (CI installs it: apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "a Dovecot master must be started as root (CI runs as root)"
    return None


class DovecotInstance:
    """`with DovecotInstance() as imap: imap.url, imap.deliver(raw)`; stopped by its PID and removed on exit.

    The master runs in the foreground (`-F`) under `timeout`, so a test run killed before its
    teardown leaves no Dovecot behind for longer than `max_lifetime` seconds.
    """

    def __init__(self, max_lifetime: int = 600, capability: str = ""):
        self.max_lifetime = max_lifetime
        self.capability = capability  # e.g. "IMAP4rev1 UIDPLUS": a server without MOVE
        self.port = self.plain_port = 0
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self._delivered = 0

    @property
    def url(self) -> str:
        return f"imaps://{USER}@127.0.0.1:{self.port}/INBOX"

    @property
    def starttls_url(self) -> str:
        return f"imap://{USER}@127.0.0.1:{self.plain_port}/INBOX"

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / USER

    def start(self) -> DovecotInstance:
        self.root = Path(tempfile.mkdtemp(prefix="mailflow-dovecot-"))
        self.root.chmod(0o755)
        try:
            nobody = pwd.getpwnam("nobody")
            make_certificate(self.root)
            for sub in ("mail", "mail/" + USER, "mail/" + USER + "/new", "mail/" + USER + "/cur",
                        "mail/" + USER + "/tmp"):
                (self.root / sub).mkdir()
                os.chown(self.root / sub, nobody.pw_uid, nobody.pw_gid)
            (self.root / "users").write_text(
                f"{USER}:{{PLAIN}}{PASSWORD}:{nobody.pw_uid}:{nobody.pw_gid}::{self.root}/mail/{USER}\n")
            self.port, self.plain_port = free_port(), free_port()
            capability = f"imap_capability = {self.capability}\n" if self.capability else ""
            (self.root / "dovecot.conf").write_text(CONF.format(root=self.root, port=self.port, plain_port=self.plain_port,
                                                                capability=capability))
            self.process = subprocess.Popen(
                ["timeout", str(self.max_lifetime), DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                stdout=subprocess.DEVNULL, stderr=open(self.root / "stderr.log", "wb"), start_new_session=True)
            if not poll(self._greets, WAIT):
                raise RuntimeError(f"Dovecot did not greet on port {self.plain_port}; log:\n{self.log()}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # its own session: timeout, the master, its children
                self.process.wait(timeout=WAIT)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=WAIT)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> DovecotInstance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.root / "dovecot.log", self.root / "stderr.log")
                 if p.exists()]
        return "\n".join(parts) or "(no log)"

    def deliver(self, raw: bytes) -> Path:
        """Put one message into the INBOX as an MTA's local delivery does (tmp/, then rename into new/)."""
        self._delivered += 1
        name = f"{time.time_ns()}.M{self._delivered}P{os.getpid()}.mailflow-test"
        tmp, new = self.maildir / "tmp" / name, self.maildir / "new" / name
        tmp.write_bytes(raw)
        os.chown(tmp, *self._owner())
        os.rename(tmp, new)
        return new

    def messages(self, folder: str = "") -> list[Path]:
        """The message files in the INBOX (or a folder, e.g. "Processed"), wherever Dovecot moved them."""
        base = self.maildir / f".{folder}" if folder else self.maildir
        return sorted(p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir())

    def reset_uidvalidity(self) -> None:
        """Make the INBOX's UIDVALIDITY change (and its UIDs restart), as a restored or rebuilt mailbox does."""
        uidlist = self.maildir / "dovecot-uidlist"
        header, _, _ = uidlist.read_text().partition("\n")
        fields = [f"V{int(f[1:]) + 1000}" if f.startswith("V") else f for f in header.split()]
        uidlist.write_text(" ".join(f if not f.startswith("N") else "N1" for f in fields) + "\n")
        for index in self.maildir.glob("dovecot.index*"):
            index.unlink()

    def _owner(self) -> tuple[int, int]:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid

    def _greets(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Dovecot exited ({self.process.returncode}); log:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.plain_port), timeout=WAIT) as sock:
                return sock.recv(4) == b"* OK"
        except OSError:
            return False


class CuttingProxy:
    """A loopback TCP proxy to `port` that drops the connection once `cut_after` bytes came back from the server:
    a server or network that goes away mid-fetch, at a byte count rather than a moment."""

    def __init__(self, port: int, cut_after: int):
        self.port, self.cut_after = port, cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.cut = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self._thread.join(WAIT)

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        upstream = threading.Thread(target=self._pump, args=(client, server, None), daemon=True)
        upstream.start()
        self._pump(server, client, self.cut_after)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        upstream.join(WAIT)

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None) -> None:
        sent = 0
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if limit is not None and sent + len(data) >= limit:
                target.sendall(data[:limit - sent])
                self.cut.set()
                return
            sent += len(data)
            try:
                target.sendall(data)
            except OSError:
                return
