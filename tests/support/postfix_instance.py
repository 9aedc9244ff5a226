"""A private Postfix for integration tests: its own config, queue and Maildir under one temp dir, loopback only."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mailflow.tasks.demo.receiver import free_port

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
POSTFIX, POSTCONF = shutil.which("postfix", path=SBIN), shutil.which("postconf", path=SBIN)
MAIL_OWNER, SETGID_GROUP = "postfix", "postdrop"  # created by the Debian package's postinst
DOMAIN = "test.example"  # delivered to the Maildir
RELAY_DOMAIN = "relay.example"  # relayed over SMTP to `relay_port`, as a real relay forwards to an MX
WAIT = 30.0  # seconds: generous bounds for polls, never a timing assertion

# Upstream's master.cf with every chroot column "n": Debian's own master.cf chroots smtpd & co.
# into the queue directory, which only works once its init script has copied /etc/services,
# resolv.conf and friends there.
MASTER_CF = """\
{port}   inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if POSTFIX is None or POSTCONF is None:
        return "Postfix is not installed (CI installs it: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a Postfix master must be started as root (CI runs as root)"
    return None


def main_cf(root: Path, port: int, relay_port: int, mailbox_uid: int, mailbox_gid: int) -> str:
    """Everything this instance needs, so nothing is read from the system's /etc/postfix/main.cf."""
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = {MAIL_OWNER}
setgid_group = {SETGID_GROUP}
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
myhostname = mx.{DOMAIN}
mydomain = {DOMAIN}
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
# DNS answers NXDOMAIN here: no reverse lookups of clients, no MX or A lookups when relaying
# (disable_dns_lookups is the deprecated spelling of the second), no NIS or /etc/aliases.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{mailbox_uid}
virtual_gid_maps = static:{mailbox_gid}
transport_maps = inline:{{ {RELAY_DOMAIN}=smtp:[127.0.0.1]:{relay_port} }}
biff = no
"""


class PostfixInstance:
    """`with PostfixInstance(relay_port) as mta: mta.port, mta.wait_for(n)`; stopped and removed on exit.

    How it runs as root: `mail_owner` is the package's unprivileged `postfix` account and owns
    the queue, so the temp dir must be traversable by it (a pytest tmp_path under 0700
    /tmp/pytest-of-root is not) and the queue and data directories must not be made by us as
    root: `postfix -c DIR check` creates them with the owners and modes of the package's
    postfix-files. No `alternate_config_directories` entry is needed: root may pass any `-c`,
    that list only guards the set-gid postdrop/postqueue, and mail arrives here over SMTP.
    The master is started as `postfix start` would (`check`, then `master -w`, which returns
    once the daemon has initialised and bound its port), plus `-e`, so that a test run killed
    before its teardown does not leave a master behind for longer than that.
    """

    def __init__(self, relay_port: int, max_lifetime: int = 600):
        self.relay_port, self.max_lifetime = relay_port, max_lifetime
        self.port = 0
        self.root: Path | None = None

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "inbox"

    def start(self) -> PostfixInstance:
        self.root = Path(tempfile.mkdtemp(prefix="mailflow-postfix-"))
        self.root.chmod(0o755)
        try:
            nobody = pwd.getpwnam("nobody")  # the Maildir's owner; virtual(8) refuses uids under 100
            (self.root / "mail").mkdir()
            os.chown(self.root / "mail", nobody.pw_uid, nobody.pw_gid)
            (self.root / "queue").mkdir()
            (self.root / "queue").chmod(0o755)  # root-owned, as postfix-script's check wants
            conf = self.root / "conf"
            conf.mkdir()
            self.port = free_port()
            (conf / "main.cf").write_text(main_cf(self.root, self.port, self.relay_port, nobody.pw_uid, nobody.pw_gid))
            (conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
            self._run(POSTFIX, "-c", str(conf), "check")
            master = self._run(POSTCONF, "-c", str(conf), "-h", "daemon_directory").strip() + "/master"
            self._run(master, "-c", str(conf), "-w", "-e", str(self.max_lifetime))
            self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            if (self.root / "data" / "master.lock").exists():
                # Stops the master, waits up to 5 s for it, then kills its process group.
                subprocess.run([POSTFIX, "-c", str(self.root / "conf"), "stop"], capture_output=True, timeout=WAIT)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def wait_for(self, count: int) -> list[Path]:
        """The delivered messages once there are `count` of them (fails, with the log, after WAIT)."""
        def files() -> list[Path]:
            return sorted((self.maildir / "new").glob("*")) if (self.maildir / "new").is_dir() else []

        poll(lambda: len(files()) >= count)
        found = files()
        assert len(found) == count, f"{len(found)} of {count} messages in the Maildir; Postfix log:\n{self.log()}"
        return found

    def _run(self, *command: str) -> str:
        # Postfix's own queue directories must be readable by its users, whatever the caller's umask.
        done = subprocess.run(command, capture_output=True, text=True, timeout=WAIT, umask=0o022)
        if done.returncode != 0:
            # Postfix commands report to the log file, and to stderr only on a terminal.
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{self.log()}")
        return done.stdout

    def _wait_for_port(self) -> None:
        def greets() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as sock:
                    return sock.recv(3) == b"220"
            except OSError:
                return False

        if not poll(greets):
            raise RuntimeError(f"Postfix smtpd did not greet on port {self.port}; log:\n{self.log()}")


def poll(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Whether `condition` came true within `timeout`: a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
