"""Bounce intake: bounces mapped to the sends they answer, `mailflow bounces classify`, events and suppressions."""

import json
import os

import pytest

from mailflow.cli import main
from mailflow.tasks.bounces.intake import BounceRecorder, message_rows
from mailflow.tasks.bounces.mapping import SendIndex
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.files.manifest import campaign_dir
from tests.support.campaign import SECRET_ENV, write_chunk
from tests.support.dsn import complaint, dsn, write_maildir, write_mbox
from tests.support.events import read_line
from tests.support.sent import EMAILS, send_to_receiver, signer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """A campaign really sent to a loopback receiver: its home and each recipient's message as received."""
    return send_to_receiver(tmp_path_factory.mktemp("bounce-home"), EMAILS)


def index_of(settings):
    return SendIndex(settings.home, signer())


def test_a_bounce_maps_to_its_send_by_the_verp_return_path(sent):
    settings, received = sent
    verp = received["bob@example.com"].sender  # bounce+<token>@bounces...
    raw = dsn(b"Subject: x\r\n\r\nbody\r\n", "someone-else@example.org", to=verp)  # neither header nor address helps
    [row] = message_rows(raw, "m.eml", index_of(settings))
    assert (row["campaign_id"], row["subscriber_id"], row["mapped_by"]) == ("news", 2, "return_path")
    assert row["variant"] == "A" and "unmapped" not in row


def test_a_bounce_maps_by_the_trace_header_in_the_returned_headers(sent):
    settings, received = sent
    raw = dsn(received["cy@example.com"].data, "renamed@example.org", headers_only=True)
    [row] = message_rows(raw, "m.eml", index_of(settings))
    assert (row["campaign_id"], row["subscriber_id"], row["mapped_by"]) == ("news", 3, "trace_header")


def test_a_bounce_without_tokens_maps_by_its_recipient_through_the_ledger(sent):
    settings, _ = sent
    raw = dsn(b"Subject: x\r\n\r\nbody\r\n", "ANN@example.com")
    [row] = message_rows(raw, "m.eml", index_of(settings))
    assert (row["campaign_id"], row["subscriber_id"], row["mapped_by"]) == ("news", 1, "recipient")
    assert (row["kind"], row["reason"], row["status"], row["smtp_code"]) == ("hard", "user_unknown", "5.1.1", 550)


def test_a_forged_or_foreign_token_does_not_map_and_the_bounce_is_kept_as_unmapped(sent):
    settings, received = sent
    forged = TokenSigner("another-secret").sign("news", 2, "send")
    raw = dsn(b"Subject: x\r\n\r\nbody\r\n", "stranger@example.org", to=f"bounce+{forged}@bounces.example.com")
    [row] = message_rows(raw, "m.eml", index_of(settings))
    assert row["unmapped"] is True and "campaign_id" not in row and row["recipient"] == "stranger@example.org"


def test_recording_writes_events_and_suppresses_hard_bounces_and_complaints_but_not_soft_ones(sent, tmp_path):
    settings, received = sent
    hard = dsn(received["ann@example.com"].data, "ann@example.com")
    soft = dsn(received["bob@example.com"].data, "bob@example.com", "4.2.2", "smtp; 452 4.2.2 mailbox full")
    abuse = complaint(received["cy@example.com"].data)
    home = tmp_path / "h"
    index = index_of(settings)
    with BounceRecorder(home) as recorder:
        for n, raw in enumerate([hard, soft, abuse]):
            recorder.record(raw, message_rows(raw, f"{n}.eml", index))
    events = [read_line(line) for line in recorder.path.read_text().splitlines()]
    assert recorder.path.name.startswith(f"bounces-{os.getpid()}-")
    assert [(e["type"], e["kind"], e["subscriber_id"]) for e in events] == [
        ("bounce", "hard", 1), ("bounce", "soft", 2), ("complaint", "complaint", 3)]
    assert all(e["campaign_id"] == "news" and e["occurred_at"] for e in events)
    suppressed = [json.loads(line) for line in (home / "suppressions" / "log").glob("*.ndjson").__next__().read_text().splitlines()]
    assert [(s["email"], s["cause"]) for s in suppressed] == [("ann@example.com", "bounce:user_unknown"),
                                                            ("cy@example.com", "complaint")]


def test_a_message_processed_twice_gives_the_same_event_ids(sent, tmp_path):
    settings, received = sent
    raw = dsn(received["ann@example.com"].data, "ann@example.com")
    ids = []
    for _ in range(2):
        with BounceRecorder(tmp_path / "h") as recorder:
            recorder.record(raw, message_rows(raw, "a.eml", index_of(settings)))
        ids.append([json.loads(line)["event_id"] for line in recorder.path.read_text().splitlines()])
    assert ids[0] == ids[1] and len(ids[0]) == 1
    other = dsn(received["bob@example.com"].data, "bob@example.com")
    with BounceRecorder(tmp_path / "h") as recorder:
        recorder.record(other, message_rows(other, "b.eml", index_of(settings)))
    assert json.loads(recorder.path.read_text())["event_id"] != ids[0][0]


def classify(capsys, monkeypatch, home, *args):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", SECRET_ENV["MAILFLOW_TRACKING__SECRET"])
    code = main(["--home", str(home), "bounces", "classify", *map(str, args)])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def test_classify_reads_maildir_mbox_and_eml_files_and_prints_one_object_per_recipient(sent, tmp_path, capsys, monkeypatch):
    settings, received = sent
    hard = dsn(received["ann@example.com"].data, "ann@example.com")
    hello = b"From: friend@example.org\r\nSubject: hello\r\n\r\nJust saying hi.\r\n"
    box = write_maildir(tmp_path / "Maildir", [hard])
    mbox = write_mbox(tmp_path / "bounces.mbox", [hello, hard])
    single = tmp_path / "one.eml"
    single.write_bytes(hard)
    code, rows, err = classify(capsys, monkeypatch, settings.home, box, mbox, single)
    assert code == 0 and "3 message(s)" not in err and "4 message(s), 0 bounce(s) unmapped" in err
    assert [(r["kind"], r.get("subscriber_id")) for r in rows] == [("hard", 1), ("not_bounce", None), ("hard", 1),
                                                                    ("hard", 1)]
    assert rows[0]["source"].startswith(str(box / "new"))
    assert [r["source"] for r in rows[1:]] == [f"{mbox}#1", f"{mbox}#2", str(single)]
    assert set(rows[0]) >= {"source", "recipient", "kind", "reason", "status", "smtp_code", "diagnostic",
                            "campaign_id", "subscriber_id"}
    assert not (settings.home / "events").exists() or not list((settings.home / "events").glob("bounces-*"))


def test_classify_record_writes_the_events(sent, tmp_path, capsys, monkeypatch):
    settings, received = sent
    home = tmp_path / "h"
    (home / "ledger").mkdir(parents=True)
    single = tmp_path / "one.eml"
    single.write_bytes(dsn(received["ann@example.com"].data, "ann@example.com"))
    code, rows, err = classify(capsys, monkeypatch, home, "--record", single)
    assert code == 0 and rows[0]["unmapped"] is True, "another home knows no campaign: kept, reported unmapped"
    [events] = list((home / "events").glob("bounces-*.ndjson"))
    assert read_line(events.read_text())["unmapped"] is True and "1 bounce(s) unmapped" in err


@pytest.mark.parametrize("bad", ["missing.eml", "locked"])
def test_classify_names_an_unreadable_path_in_one_line_and_exits_2(tmp_path, capsys, monkeypatch, bad):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        code, rows, err = classify(capsys, monkeypatch, tmp_path / "h", tmp_path / bad)
    finally:
        locked.chmod(0o700)
    if bad == "locked" and os.geteuid() == 0:
        pytest.skip("root reads any folder")
    assert code == 2 and rows == [] and err.count("\n") == 1 and bad in err and "Traceback" not in err


def test_classify_says_so_when_a_folder_holds_files_but_no_messages_it_reads(tmp_path, capsys, monkeypatch):
    texts = tmp_path / "texts"  # e.g. tests/data/bounces-crisp: bounce bodies as .txt, no message among them
    texts.mkdir()
    (texts / "421_timeout.txt").write_text("This is the mail system at host mx.example.\n")
    code, rows, err = classify(capsys, monkeypatch, tmp_path / "h", texts)
    assert code == 2 and rows == [] and err.count("\n") == 1 and "none named *.eml" in err and "Maildir" in err
    (tmp_path / "empty").mkdir()
    code, rows, err = classify(capsys, monkeypatch, tmp_path / "h", tmp_path / "empty")
    assert code == 0 and rows == [] and "0 message(s)" in err, "an empty folder is nothing to do, not an error"


def test_a_bounce_processed_twice_is_loaded_once_by_aggregate_with_its_taxonomy(sent, con, home):
    from mailflow.settings import load_settings
    from mailflow.tasks.aggregate.aggregate import load_logs

    settings, received = sent
    raw = dsn(received["ann@example.com"].data, "ann@example.com")
    for _ in range(2):  # two runs (two files) over the same message
        with BounceRecorder(home) as recorder:
            recorder.record(raw, message_rows(raw, "a.eml", index_of(settings)))
    result = load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))
    assert (result["events_loaded"], result["events_repeated"], result["event_lines_rejected"]) == (1, 1, 0)
    assert con.execute("SELECT type, campaign_id, subscriber_id, kind, reason, status, smtp_code FROM events").fetchall() == [
        ("bounce", "news", 1, "hard", "user_unknown", "5.1.1", 550)]


def test_an_address_mailed_by_two_campaigns_maps_to_the_later_send(tmp_path):
    from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path

    home = tmp_path / "h"
    for campaign, first_id in (("older", 10), ("newer", 20)):
        write_chunk(campaign_dir(home, campaign) / "chunks" / "chunk-00000.parquet", ["dee@example.com"],
                    variant="B", first_id=first_id)
        with LedgerWriter(ledger_path(home, campaign, 0)) as ledger:  # written in this order: "newer" is later
            ledger.append(LedgerRecord(campaign, first_id, "B", 0, "delivered", 250, "2.0.0", "", 1))
    [row] = message_rows(dsn(b"Subject: x\r\n\r\nbody\r\n", "dee@example.com"), "m.eml", SendIndex(home, None))
    assert (row["campaign_id"], row["subscriber_id"], row["variant"]) == ("newer", 20, "B")
