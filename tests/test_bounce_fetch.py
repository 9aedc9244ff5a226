"""`mailflow bounces fetch`: a local Maildir and an IMAP box read once each, made durable per batch, mail moved aside;
bounces mapped by Message-ID and In-Reply-To; mailto unsubscribes."""

import json
from email import message_from_bytes
from pathlib import Path

import pytest

from mailflow.cli import main
from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.bounces.fetch import fetch_bounces
from mailflow.tasks.bounces.intake import BounceRecorder, message_rows
from mailflow.tasks.bounces.maildir import PROCESSED, fetch_maildir, maildir_path
from mailflow.tasks.bounces.mapping import SendIndex
from mailflow.tasks.files.suppress import suppression_dir
from tests.support.campaign import SECRET_ENV
from tests.support.dovecot import PASSWORD, DovecotInstance, unavailable
from tests.support.dsn import complaint, dsn, write_maildir
from tests.support.events import read_line
from tests.support.sent import send_to_receiver, signer

pytestmark = pytest.mark.integration


class Crash(Exception):
    """Stands for the process dying between the durable record and the move."""


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    return send_to_receiver(tmp_path_factory.mktemp("fetch-home"))


def fetch_settings(home, **bounces):
    return load_settings(overrides={"home": str(home), "bounces": bounces}, environ=SECRET_ENV)


def events_of(home):
    return [read_line(line) for path in sorted((home / "events").glob("bounces-*.ndjson")) for line in path.read_text().splitlines()]


def suppressions_of(home):
    return [json.loads(line) for path in sorted((suppression_dir(home) / "log").glob("*.ndjson"))
            for line in path.read_text().splitlines()]


def mailbox_files(box, sub):
    return sorted(p.name for p in (box / sub).iterdir())


def test_a_maildir_is_fetched_once_and_its_mail_moved_to_processed_never_deleted(sent, tmp_path):
    settings, received = sent
    home = tmp_path / "h"
    home.mkdir()
    (home / "ledger").symlink_to(settings.home / "ledger")  # the sends this home knows
    (home / "campaigns").symlink_to(settings.home / "campaigns")
    box = write_maildir(home / "bounce-box", [dsn(received["ann@example.com"].data, "ann@example.com"),
                                             complaint(received["cy@example.com"].data),
                                             mailto_unsubscribe(mailto_of(received["bob@example.com"].data)),
                                             b"From: friend@example.org\r\nSubject: hi\r\n\r\nhello\r\n"])
    first = fetch_bounces(fetch_settings(home, maildir="bounce-box"))  # relative: to the home
    assert (first["fetched"], first["kinds"], first["unmapped"], first["suppressed"], first["moved"]) == (
        4, {"hard": 1, "complaint": 1, "unsubscribe": 1, "not_bounce": 1}, 0, 3, 4)
    assert mailbox_files(box, "new") == mailbox_files(box, "cur") == []
    assert len(mailbox_files(box / PROCESSED, "cur")) == 4 and all(n.endswith(":2,S") for n in mailbox_files(box / PROCESSED, "cur"))
    second = fetch_bounces(fetch_settings(home, maildir=str(box)))
    assert (second["fetched"], second["moved"], second["kinds"]) == (0, 0, {})
    assert sorted((e["type"], e["subscriber_id"]) for e in events_of(home)) == [("bounce", 1), ("complaint", 3), ("unsubscribe", 2)]
    assert sorted((s["email"], s["cause"]) for s in suppressions_of(home)) == [
        ("ann@example.com", "bounce:user_unknown"), ("bob@example.com", "unsubscribe"), ("cy@example.com", "complaint")]


def test_a_crash_between_recording_and_moving_handles_the_batch_again_with_the_same_event_ids(sent, tmp_path):
    settings, received = sent
    box = write_maildir(tmp_path / "box", [dsn(received["bob@example.com"].data, "bob@example.com"),
                                          dsn(received["cy@example.com"].data, "cy@example.com")])
    home = tmp_path / "h"
    index = SendIndex(settings.home, signer())
    recorder = BounceRecorder(home)

    def crash_after_commit():
        recorder.sync()
        raise Crash

    with pytest.raises(Crash):
        fetch_maildir(box, lambda raw, source: recorder.record(raw, message_rows(raw, source, index)), crash_after_commit)
    recorder.close()
    assert len(mailbox_files(box, "new")) == 2, "nothing moved before the crash"
    before = [e["event_id"] for e in events_of(home)]
    with BounceRecorder(home) as again:
        report = fetch_maildir(box, lambda raw, source: again.record(raw, message_rows(raw, source, index)), again.sync)
    assert (report.fetched, report.moved) == (2, 2) and mailbox_files(box, "new") == []
    after = [e["event_id"] for e in events_of(home)]
    assert len(before) == 2 and sorted(after) == sorted(before * 2), "the same ids: aggregate counts each once"


def test_a_message_that_vanished_from_the_maildir_is_skipped(tmp_path):
    box = write_maildir(tmp_path / "box", [b"Subject: a\r\n\r\na\r\n", b"Subject: b\r\n\r\nb\r\n"])
    seen = []

    def handler(raw, source):
        seen.append(raw)
        for other in (box / "new").iterdir():  # another reader takes the other message meanwhile
            if str(other) != source:
                other.unlink()

    report = fetch_maildir(box, handler)
    assert (report.fetched, report.moved, len(seen)) == (1, 1, 1)


def test_the_maildir_setting_is_relative_to_the_home_and_expands_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert maildir_path(tmp_path, "box") == tmp_path / "box"
    assert maildir_path(tmp_path, "~/Maildir") == tmp_path / "me" / "Maildir"
    assert maildir_path(tmp_path, "/var/mail/b") == Path("/var/mail/b") and maildir_path(tmp_path, " ") is None


def test_a_dsn_that_returns_only_the_message_id_maps_by_it(sent):
    settings, received = sent
    original = message_from_bytes(received["bob@example.com"].data)
    assert original["Message-ID"].startswith(f"<{original['X-Mailflow-Send']}."), "compose puts the send token in it"
    headers_only = f"Message-ID: {original['Message-ID']}\r\nSubject: x\r\n\r\n".encode()
    raw = dsn(headers_only, "renamed@example.org", headers_only=True)
    [row] = message_rows(raw, "m.eml", SendIndex(settings.home, signer()))
    assert (row["campaign_id"], row["subscriber_id"], row["mapped_by"]) == ("news", 2, "message_id")


def test_an_auto_reply_maps_by_its_in_reply_to(sent):
    settings, received = sent
    answered = message_from_bytes(received["cy@example.com"].data)["Message-ID"]
    raw = (f"From: Cy <cy-home@example.net>\r\nTo: news@example.com\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
           f"In-Reply-To: {answered}\r\nReferences: <older@example.net> {answered}\r\n\r\nBack on Monday.\r\n").encode()
    [row] = message_rows(raw, "r.eml", SendIndex(settings.home, signer()))
    assert (row["kind"], row["campaign_id"], row["subscriber_id"], row["mapped_by"]) == ("auto_reply", "news", 3, "in_reply_to")


def mailto_of(sent_message: bytes) -> str:
    """The address List-Unsubscribe offers (`unsubscribe+TOKEN@bounce domain`)."""
    parts = message_from_bytes(sent_message)["List-Unsubscribe"].split(",")
    [mailto] = [part.strip().strip("<>") for part in parts if "mailto:" in part]
    return mailto.removeprefix("mailto:")


def mailto_unsubscribe(to: str, header: str = "Delivered-To") -> bytes:
    return (f"{header}: {to}\r\nFrom: Ann <ann.private@example.net>\r\nTo: {to}\r\nSubject: unsubscribe\r\n\r\n"
            "unsubscribe\r\n").encode()


@pytest.mark.parametrize("header", ["Delivered-To", "X-Original-To", "Envelope-To", "To"])
def test_mail_to_the_list_unsubscribe_mailto_address_unsubscribes_as_the_tracking_service_does(sent, tmp_path, header):
    settings, received = sent
    raw = mailto_unsubscribe(mailto_of(received["ann@example.com"].data), header)
    [row] = message_rows(raw, "u.eml", SendIndex(settings.home, signer()))
    assert (row["kind"], row["action"], row["subscriber_id"], row["recipient"], row["mapped_by"]) == (
        "not_bounce", "unsubscribe", 1, "ann@example.com", "mailto")
    with BounceRecorder(tmp_path) as recorder:
        recorder.record(raw, [row])
    [event] = events_of(tmp_path)
    assert (event["type"], event["method"], event["campaign_id"], event["subscriber_id"]) == ("unsubscribe", "mailto", "news", 1)
    assert [(s["email"], s["cause"]) for s in suppressions_of(tmp_path)] == [("ann@example.com", "unsubscribe")]


def test_a_forged_mailto_token_unsubscribes_nobody(sent):
    from mailflow.tasks.compose.tokens import TokenSigner

    settings, _ = sent
    forged = TokenSigner("not-our-secret").sign("news", 1, "send")
    [row] = message_rows(mailto_unsubscribe(f"unsubscribe+{forged}@bounces.example.com"), "u.eml",
                         SendIndex(settings.home, signer()))
    assert "action" not in row and row["kind"] == "not_bounce" and "subscriber_id" not in row


def run_fetch(capsys, monkeypatch, home, *args):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", SECRET_ENV["MAILFLOW_TRACKING__SECRET"])
    code = main(["--home", str(home), "bounces", "fetch", *args])
    return code, capsys.readouterr()


def test_fetch_without_a_mailbox_configured_is_one_line_naming_the_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MAILFLOW_BOUNCES__MAILDIR", raising=False)
    monkeypatch.delenv("MAILFLOW_BOUNCES__IMAP__URL", raising=False)
    code, out = run_fetch(capsys, monkeypatch, tmp_path)
    assert code == 2 and out.err.count("\n") == 1 and "bounces.maildir" in out.err and "bounces.imap.url" in out.err
    monkeypatch.setenv("MAILFLOW_BOUNCES__MAILDIR", str(tmp_path / "nowhere"))
    code, out = run_fetch(capsys, monkeypatch, tmp_path)
    assert code == 2 and "is not a Maildir" in out.err and "Traceback" not in out.err


@pytest.mark.flow
def test_fetch_command_runs_the_flow_and_prints_one_line_or_json(prefect_harness, sent, tmp_path, capsys, monkeypatch):
    settings, received = sent
    box = write_maildir(tmp_path / "box", [dsn(received["ann@example.com"].data, "ann@example.com")])
    monkeypatch.setenv("MAILFLOW_BOUNCES__MAILDIR", str(box))
    code, out = run_fetch(capsys, monkeypatch, settings.home)
    assert code == 0 and out.out == "fetched 1 message(s): 1 hard; 0 unmapped, 1 suppressed, 1 moved\n"
    write_maildir(box, [b"Subject: hi\r\n\r\nhello\r\n"])
    code, out = run_fetch(capsys, monkeypatch, settings.home, "--json")
    result = json.loads(out.out)
    assert code == 0 and (result["fetched"], result["kinds"], result["sources"]["maildir"]["moved"]) == (1, {"not_bounce": 1}, 1)


def test_fetch_reads_both_the_maildir_and_the_imap_box(sent, tmp_path, monkeypatch):
    if reason := unavailable():
        pytest.skip(reason)
    settings, received = sent
    box = write_maildir(tmp_path / "box", [dsn(received["ann@example.com"].data, "ann@example.com")])
    with DovecotInstance() as server:
        server.deliver(dsn(received["bob@example.com"].data, "bob@example.com", "4.2.2", "smtp; 452 4.2.2 mailbox full"))
        monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate))  # the default context trusts the test server
        config = load_settings(overrides={"home": str(settings.home), "bounces": {"maildir": str(box), "imap": {"url": server.url}}},
                               environ={**SECRET_ENV, "MAILFLOW_BOUNCES__IMAP__PASSWORD": PASSWORD})
        result = fetch_bounces(config)
        again = fetch_bounces(config)
        processed = len(server.messages("Processed"))
    assert (result["fetched"], result["kinds"], result["suppressed"], result["moved"]) == (2, {"hard": 1, "soft": 1}, 1, 2)
    assert (result["sources"]["maildir"]["fetched"], result["sources"]["imap"]["fetched"]) == (1, 1)
    assert (again["fetched"], processed) == (0, 1)


def test_fetch_refuses_to_run_without_the_token_secret(tmp_path):
    box = write_maildir(tmp_path / "box", [])
    with pytest.raises(MailflowError, match="MAILFLOW_TRACKING__SECRET"):
        fetch_bounces(load_settings(overrides={"home": str(tmp_path), "bounces": {"maildir": str(box)}}, environ={}))


def test_an_imap_box_without_its_password_is_refused_before_the_maildir_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFLOW_BOUNCES__IMAP__PASSWORD", raising=False)
    box = write_maildir(tmp_path / "box", [b"Subject: hi\r\n\r\nhello\r\n"])
    with pytest.raises(MailflowError, match="MAILFLOW_BOUNCES__IMAP__PASSWORD"):
        fetch_bounces(load_settings(overrides={"home": str(tmp_path), "bounces": {
            "maildir": str(box), "imap": {"url": "imaps://bounces@mail.example.com/INBOX"}}}, environ=SECRET_ENV))
    assert len(mailbox_files(box, "new")) == 1, "nothing was fetched"


def test_a_mailto_unsubscribe_is_loaded_by_aggregate_as_an_unsubscribe_once(sent, con, home):
    from mailflow.tasks.aggregate.aggregate import load_logs

    settings, received = sent
    raw = mailto_unsubscribe(mailto_of(received["cy@example.com"].data))
    for _ in range(2):  # fetched twice (a crash before the move): one event
        with BounceRecorder(home) as recorder:
            recorder.record(raw, message_rows(raw, "u.eml", SendIndex(settings.home, signer())))
    result = load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))
    assert (result["events_loaded"], result["events_repeated"], result["event_lines_rejected"]) == (1, 1, 0)
    assert con.execute("SELECT type, campaign_id, subscriber_id FROM events").fetchall() == [("unsubscribe", "news", 3)]
    assert con.execute("SELECT cause FROM suppressions WHERE email = 'cy@example.com'").fetchall() == [("unsubscribe",)]
