"""IMAP bounce intake against a real Dovecot: each message once, across runs, crashes, drops and UIDVALIDITY changes."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections import Counter

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.bounces.imap import fetch_configured, fetch_new, parse_url, read_state, state_file
from tests.support.dovecot import PASSWORD, CuttingProxy, DovecotInstance, unavailable

pytestmark = pytest.mark.integration


def bounce(n: int, size: int = 0) -> bytes:
    padding = ("x" * 76 + "\r\n") * (size // 78)
    return (f"From: MAILER-DAEMON@mx.test.example\r\nTo: bounce+t{n}@bounces.example.com\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-{n}@mx.test.example>\r\n\r\n"
            f"message {n}: 550 5.1.1 user unknown\r\n{padding}").encode()


class Recorder:
    """A handler that records what it was given, keyed as an idempotent handler would key its output."""

    def __init__(self, crash_on: int | None = None):
        self.seen: Counter[bytes] = Counter()
        self.sources: list[str] = []
        self.crash_on = crash_on

    def __call__(self, raw: bytes, source: str) -> None:
        if self.crash_on is not None and len(self.sources) == self.crash_on:
            self.crash_on = None
            raise Crash(source)
        self.seen[raw] += 1
        self.sources.append(source)


class Crash(Exception):
    """The process dying between fetching and committing."""


@pytest.fixture
def dovecot():
    if reason := unavailable():
        pytest.skip(reason)
    with DovecotInstance() as server:
        yield server


@pytest.fixture
def tls(dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.certificate))


def fetch(dovecot, tls, tmp_path, handler, url=None, **options):
    return fetch_new(url or dovecot.url, PASSWORD, tmp_path / "imap-state.json", handler, tls=tls, **options)


def test_each_message_is_processed_once_across_two_runs_and_moved_to_processed(dovecot, tls, tmp_path):
    for n in range(3):
        dovecot.deliver(bounce(n))
    first = Recorder()
    report = fetch(dovecot, tls, tmp_path, first)
    assert (report.fetched, report.moved) == (3, 3)
    assert sorted(first.seen) == sorted(bounce(n) for n in range(3))
    for n in range(3, 5):
        dovecot.deliver(bounce(n))
    second = Recorder()
    report = fetch(dovecot, tls, tmp_path, second)
    assert sorted(second.seen) == [bounce(3), bounce(4)]
    assert fetch(dovecot, tls, tmp_path, Recorder()).fetched == 0
    assert dovecot.messages() == [] and len(dovecot.messages("Processed")) == 5  # moved, none deleted


def test_without_a_processed_folder_mail_stays_and_is_still_processed_once(dovecot, tls, tmp_path):
    for n in range(4):
        dovecot.deliver(bounce(n))
    assert fetch(dovecot, tls, tmp_path, Recorder(), processed_folder="").fetched == 4
    assert fetch(dovecot, tls, tmp_path, Recorder(), processed_folder="").fetched == 0
    assert len(dovecot.messages()) == 4 and dovecot.messages("Processed") == []


def test_a_crash_between_fetch_and_commit_repeats_only_that_batch_once(dovecot, tls, tmp_path):
    for n in range(7):
        dovecot.deliver(bounce(n))
    handler = Recorder(crash_on=4)  # handles UIDs 1-4, dies on 5: batch 1 (1-3) committed, batch 2 (4-6) not
    with pytest.raises(Crash):
        fetch(dovecot, tls, tmp_path, handler, batch=3)
    assert read_state(tmp_path / "imap-state.json")[parse_url(dovecot.url).key]["last_uid"] == 3
    fetch(dovecot, tls, tmp_path, handler, batch=3)
    assert set(handler.seen) == {bounce(n) for n in range(7)}
    assert {raw for raw, count in handler.seen.items() if count > 1} == {bounce(3)}  # handled, not committed
    assert max(handler.seen.values()) == 2
    assert len(dovecot.messages("Processed")) == 7


def test_a_crash_between_commit_and_move_is_tidied_without_processing_again(dovecot, tls, tmp_path):
    for n in range(3):
        dovecot.deliver(bounce(n))
    handler = Recorder()
    fetch(dovecot, tls, tmp_path, handler, processed_folder="")  # committed, never moved: as if it died there
    report = fetch(dovecot, tls, tmp_path, handler)
    assert (report.fetched, report.moved) == (0, 3)
    assert sum(handler.seen.values()) == 3 and len(dovecot.messages("Processed")) == 3


def test_a_connection_dropped_mid_fetch_is_a_clean_error_and_the_next_run_resumes(dovecot, tls, tmp_path):
    for n in range(30):
        dovecot.deliver(bounce(n, size=2000))
    handler = Recorder()
    with CuttingProxy(dovecot.port, cut_after=45_000) as proxy:
        url = f"imaps://bounces@127.0.0.1:{proxy.address[1]}/INBOX"
        with pytest.raises(MailflowError, match="the next run resumes there") as error:
            fetch(dovecot, tls, tmp_path, handler, url=url, batch=10)
        assert proxy.cut.is_set()
    assert "Traceback" not in str(error.value)
    done = sum(handler.seen.values())
    assert 0 < done < 30  # the first batches committed, the cut one not
    fetch(dovecot, tls, tmp_path, handler)
    assert set(handler.seen) == {bounce(n, size=2000) for n in range(30)} and max(handler.seen.values()) == 1


def test_a_uidvalidity_change_rescans_the_mailbox(dovecot, tls, tmp_path):
    for n in range(5):
        dovecot.deliver(bounce(n))
    before = fetch(dovecot, tls, tmp_path, Recorder())
    for n in range(5, 7):
        dovecot.deliver(bounce(n))
    dovecot.reset_uidvalidity()  # the new mail gets UIDs 1 and 2 again, under a new UIDVALIDITY
    handler = Recorder()
    after = fetch(dovecot, tls, tmp_path, handler)
    assert after.uidvalidity != before.uidvalidity and after.rescanned
    assert sorted(handler.seen) == [bounce(5), bounce(6)]
    assert f"UIDVALIDITY={after.uidvalidity}/" in handler.sources[0]


def test_imap_with_starttls_is_accepted(dovecot, tls, tmp_path):
    dovecot.deliver(bounce(1))
    assert fetch(dovecot, tls, tmp_path, Recorder(), url=dovecot.starttls_url).fetched == 1


def test_a_wrong_password_is_a_one_line_error_naming_the_variable(dovecot, tls, tmp_path):
    with pytest.raises(MailflowError, match="MAILFLOW_BOUNCES__IMAP__PASSWORD"):
        fetch_new(dovecot.url, "wrong", tmp_path / "s.json", Recorder(), tls=tls)


def test_an_untrusted_certificate_is_refused(dovecot, tmp_path):
    with pytest.raises(MailflowError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_new(dovecot.url, PASSWORD, tmp_path / "s.json", Recorder(), tls=ssl.create_default_context())


@pytest.mark.parametrize("url, complaint", [
    ("pop3://u@host/", "not an imaps:// or imap:// URL"),
    ("imaps://host/INBOX", "needs a user and a host"),
    ("imaps://u:secret@host/INBOX", "MAILFLOW_BOUNCES__IMAP__PASSWORD"),
])
def test_bad_urls_are_refused_with_the_setting_named(url, complaint):
    with pytest.raises(MailflowError, match=complaint) as error:
        parse_url(url)
    assert str(error.value).startswith("bounces.imap.url") and "secret" not in str(error.value)


def test_url_defaults_to_the_inbox_and_the_tls_port():
    account = parse_url("imaps://bounces%40example.com@mail.example.com")
    assert (account.user, account.port, account.mailbox) == ("bounces@example.com", 993, "INBOX")


def test_settings_name_the_mailbox_password_folder_and_home_state(dovecot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.certificate))  # the default context trusts the test server
    monkeypatch.setenv("MAILFLOW_BOUNCES__IMAP__PASSWORD", PASSWORD)
    settings = load_settings(overrides={"home": str(tmp_path), "bounces": {"imap": {
        "url": dovecot.starttls_url, "processed_folder": "Done"}}})
    dovecot.deliver(bounce(1))
    assert fetch_configured(settings, Recorder()).moved == 1
    assert len(dovecot.messages("Done")) == 1 and state_file(tmp_path).exists()


def test_missing_imap_settings_are_one_line_errors(monkeypatch):
    monkeypatch.delenv("MAILFLOW_BOUNCES__IMAP__PASSWORD", raising=False)
    with pytest.raises(MailflowError, match="bounces.imap.url: not set"):
        fetch_configured(load_settings(environ={}), Recorder())
    with pytest.raises(MailflowError, match="MAILFLOW_BOUNCES__IMAP__PASSWORD"):
        fetch_configured(load_settings(overrides={"bounces": {"imap": {"url": "imaps://u@h/"}}}, environ={}), Recorder())


@pytest.mark.parametrize("capability, left_flagged", [("IMAP4rev1 UIDPLUS", 0), ("IMAP4rev1", 3)])
def test_without_move_mail_is_copied_and_only_its_own_uids_expunged(capability, left_flagged, tmp_path):
    if reason := unavailable():
        pytest.skip(reason)
    with DovecotInstance(capability=capability) as server:
        tls = ssl.create_default_context(cafile=str(server.certificate))
        for n in range(3):
            server.deliver(bounce(n))
        for _ in range(2):  # the second run copies nothing again
            fetch_new(server.url, PASSWORD, tmp_path / "s.json", Recorder(), tls=tls)
        assert len(server.messages("Processed")) == 3
        # No UIDPLUS: no UID EXPUNGE, and a plain EXPUNGE could remove others' mail, so the copies stay flagged.
        remaining = server.messages()
        assert len(remaining) == left_flagged and all(p.name.endswith("T") for p in remaining)


KILLED_FETCH = """
import os, ssl, sys
from pathlib import Path
from mailflow.tasks.bounces.imap import fetch_new
url, password, state, out, cafile = sys.argv[1:]
def handler(raw, source):
    with open(out, "a") as f:  # the handler's output, durable before it returns
        f.write(source + "\\n"); f.flush(); os.fsync(f.fileno())
    if sum(1 for _ in open(out)) == 5:
        os._exit(9)  # the process dies: no exception handling, no state write, no logout
fetch_new(url, password, Path(state), handler, batch=3, tls=ssl.create_default_context(cafile=cafile))
"""


def test_a_killed_process_repeats_at_most_the_uncommitted_batch(dovecot, tmp_path):
    for n in range(8):
        dovecot.deliver(bounce(n))
    out, state = tmp_path / "handled.txt", tmp_path / "imap-state.json"
    args = [dovecot.url, PASSWORD, str(state), str(out), str(dovecot.certificate)]
    killed = subprocess.run([sys.executable, "-c", KILLED_FETCH, *args], capture_output=True, timeout=60)
    assert killed.returncode == 9, killed.stderr.decode()
    subprocess.run([sys.executable, "-c", KILLED_FETCH, *args], check=True, capture_output=True, timeout=60)
    uids = Counter(line.rsplit("UID=", 1)[1] for line in out.read_text().splitlines())
    assert set(uids) == {str(n) for n in range(1, 9)}
    assert {uid for uid, count in uids.items() if count == 2} == {"4", "5"}  # handled in the batch that died
    assert max(uids.values()) == 2 and len(dovecot.messages("Processed")) == 8


def test_a_handler_error_is_raised_as_itself_and_commits_nothing_of_its_batch(dovecot, tls, tmp_path):
    dovecot.deliver(bounce(1))

    def disk_full(raw: bytes, source: str) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        fetch(dovecot, tls, tmp_path, disk_full)
    assert not (tmp_path / "imap-state.json").exists() and len(dovecot.messages()) == 1
