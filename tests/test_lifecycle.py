"""The campaign lifecycle: moves recorded in files, invalid ones refused, and pause/cancel reaching running sends."""

import json
import os
import signal
from collections import Counter

import pytest

from mailflow.cli import main
from mailflow.tasks.demo.receiver import Receiver, free_port
from mailflow.tasks.files.control import stop_kind
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.files.lifecycle import (
    InvalidTransition,
    current_state,
    record_transition,
    state_of,
    state_path,
    transitions,
    transitions_path,
)
from tests.support.campaign import SPEC, write_plan
from tests.support.commands import finish, ledger_lines, mailflow_send, planned_campaign, wait_for
from tests.support.ledgers import ledger_record


def test_each_move_is_recorded_with_its_time_who_moved_it_and_why(tmp_path):
    home = tmp_path / "home"
    record_transition(home, "spring", "planned", "mailflow plan (user ana)", "1000 recipients")
    record_transition(home, "spring", "sending", "flow send_campaign", "3 chunks due")
    record_transition(home, "spring", "paused", "mailflow campaigns pause (user bo)", "wrong link")
    state = current_state(home, "spring")
    assert (state.state, state.by, state.reason, state.seq, state.resume_to) == (
        "paused", "mailflow campaigns pause (user bo)", "wrong link", 3, "sending")
    moves = transitions(home, "spring")
    assert [(m.seq, m.from_state, m.to_state) for m in moves] == [
        (1, None, "planned"), (2, "planned", "sending"), (3, "sending", "paused")]
    assert moves[0].at <= moves[1].at <= moves[2].at
    assert len(transitions_path(home, "spring").read_text().splitlines()) == 3, "one line per move, appended"


@pytest.mark.parametrize("moves, target, message", [
    (["planned", "sending", "sent"], "paused", "campaign 'spring' is sent; it cannot be paused"),
    (["planned", "cancelled"], "sending", "campaign 'spring' is cancelled; it cannot be sent"),
    (["planned", "paused"], "paused", "campaign 'spring' is paused; it cannot be paused"),
    ([], "sending", "campaign 'spring' is not planned; it cannot be sent"),
])
def test_an_invalid_move_is_refused_with_one_line_and_changes_nothing(tmp_path, moves, target, message):
    home = tmp_path / "home"
    for move in moves:
        record_transition(home, "spring", move, "test")
    with pytest.raises(InvalidTransition) as caught:
        record_transition(home, "spring", target, "test")
    assert str(caught.value) == message
    assert [m.to_state for m in transitions(home, "spring")] == moves
    assert moves or not (home / "campaigns").exists(), "an unknown campaign gets no folder"


def test_a_campaign_planned_before_states_were_recorded_is_planned(tmp_path):
    home, _ = planned_campaign(tmp_path, recipients=3)
    state_path(home, "stopped").unlink()  # as a campaign planned before the lifecycle was recorded left it
    transitions_path(home, "stopped").unlink()
    assert state_of(home, "stopped") == "planned"
    record_transition(home, "stopped", "paused", "test")
    assert [(m.from_state, m.to_state) for m in transitions(home, "stopped")] == [("planned", "paused")]


def run(capsys, home, *args):
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cancel_then_send_is_refused_for_good_before_prefect_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")
    home, _ = planned_campaign(tmp_path, recipients=3)
    code, out, err = run(capsys, home, "campaigns", "cancel", "stopped", "--reason", "wrong list")
    assert code == 0 and "cancelled" in out
    assert stop_kind(home, "stopped") == "cancel"
    code, _, err = run(capsys, home, "send", "stopped")
    assert (code, err.strip()) == (2, "mailflow: campaign 'stopped' is cancelled; it cannot be sent")
    code, _, err = run(capsys, home, "campaigns", "resume", "stopped")
    assert code == 2 and "is cancelled; only a paused campaign can be resumed" in err
    code, _, err = run(capsys, home, "campaigns", "pause", "stopped")
    assert (code, err.strip()) == (2, "mailflow: campaign 'stopped' is cancelled; it cannot be paused")
    assert not (home / "ledger").exists(), "nothing was sent"


def test_a_paused_campaign_is_not_sent_until_resumed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")
    home, _ = planned_campaign(tmp_path, recipients=3)
    assert run(capsys, home, "campaigns", "pause", "stopped")[0] == 0
    code, _, err = run(capsys, home, "send", "stopped")
    assert (code, err.strip()) == (2, "mailflow: campaign 'stopped' is paused; `mailflow campaigns resume stopped` continues it")
    code, out, _ = run(capsys, home, "campaigns", "resume", "stopped", "--no-send")
    assert code == 0 and state_of(home, "stopped") == "planned" and stop_kind(home, "stopped") is None
    code, out, _ = run(capsys, home, "--json", "campaigns", "list")
    assert [(r["campaign"], r["state"], r["audience"]) for r in json.loads(out)] == [("stopped", "planned", 3)]
    code, out, _ = run(capsys, home, "campaigns", "show", "stopped")
    assert code == 0 and "planned -> paused  by mailflow campaigns pause" in out and "paused -> planned" in out
    assert "audience: 3 matched, 0 excluded, 3 planned" in out


@pytest.mark.integration
def test_a_pause_reaches_a_running_send_and_resume_sends_each_pending_recipient_once(tmp_path, capsys, monkeypatch):
    home, emails = planned_campaign(tmp_path)
    with Receiver(record=True, delay=0.5) as rx:  # a slow server: each message is on the wire for half a second
        proc = mailflow_send(home, rx.port)
        try:
            wait_for(lambda: len(ledger_lines(home)) >= 8, "the send under way", limit=180)
            assert run(capsys, home, "campaigns", "pause", "stopped", "--reason", "typo in the subject")[0] == 0
            out, err, seconds = finish(proc, 30)  # those on the wire finish; no further recipient is taken
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        print(f"pause to exit: {seconds:.2f} s")
        assert proc.returncode == 0, err
        assert "paused while sending" in out and "`mailflow campaigns resume stopped` continues it" in out
        records = [json.loads(line) for line in ledger_lines(home)]
        last = {r["subscriber_id"]: r["status"] for r in records}
        assert set(last.values()) == {"delivered"}, "the messages on the wire finished and were logged"
        assert 0 < len(last) < len(emails), "the rest stay pending"
        assert state_of(home, "stopped") == "paused"
        assert [m.to_state for m in transitions(home, "stopped")] == ["planned", "sending", "paused"]

        rx.handler.delay = 0.0
        resumed = mailflow_send(home, rx.port, "campaigns", "resume", "stopped")
        out, err, _ = finish(resumed, 300)
        assert resumed.returncode == 0, err
        assert f"{len(last)} already sent before" in out and "campaign stopped: sent" in out
        received = Counter(r for m in rx.received for r in m.recipients)
    assert received == Counter(emails), "every recipient received exactly one message"
    delivered = Counter(json.loads(line)["subscriber_id"] for line in ledger_lines(home)
                        if json.loads(line)["status"] == "delivered")
    assert len(delivered) == len(emails) and set(delivered.values()) == {1}
    assert [m.to_state for m in transitions(home, "stopped")] == ["planned", "sending", "paused", "sending", "sent"]
    assert "resume" in transitions(home, "stopped")[3].by


def test_report_prints_the_state_from_the_files_and_the_next_retry(tmp_path, capsys):
    from mailflow.settings import load_settings
    from mailflow.tasks.aggregate.aggregate import load_logs
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path

    home, _ = planned_campaign(tmp_path, recipients=2)
    record_transition(home, "stopped", "sending", "test")
    with LedgerWriter(ledger_path(home, "stopped", 0)) as w:
        w.append(LedgerRecord("stopped", 1, "A", 0, "delivered", 250, None, "", 1))
        w.append(LedgerRecord("stopped", 2, "A", 0, "deferred", 451, None, "", 1,
                              retry_at="2026-12-03T00:05:00+00:00"))
    with connect(home / "mailflow.duckdb") as con:
        load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))
    record_transition(home, "stopped", "paused", "test")  # after the last aggregate: the files are ahead
    code, out, _ = run(capsys, home, "report", "stopped")
    assert code == 0 and "— paused" in out and "Next retry of deferred recipients: 2026-12-03T00:05:00+00:00" in out


@pytest.mark.flow
def test_send_due_sends_the_due_chunks_of_every_campaign_neither_paused_nor_waiting(prefect_harness, tmp_path,
                                                                                   monkeypatch):
    from mailflow.flows.send_due import send_due
    from mailflow.tasks.plan.campaign import CampaignSpec
    from tests.support.campaign import SECRET_ENV, TRACKING, write_plan

    monkeypatch.setenv(*next(iter(SECRET_ENV.items())))
    home = tmp_path / "home"
    news = CampaignSpec(name="News", campaign_id="news", from_addr="a@example.com", subject="s", template="newsletter")
    write_plan(home, news, [(["a@example.com"], "A", None, False), (["b@example.com"], "A", "2999-01-01T00:00:00Z", False)])
    other = CampaignSpec(name="Other", campaign_id="other", from_addr="a@example.com", subject="s", template="newsletter")
    write_plan(home, other, [(["c@example.com"], "A", None, False)])
    record_transition(home, "other", "paused", "test")
    with Receiver(record=True) as rx:
        overrides = {"home": str(home), "tracking": TRACKING,
                     "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{rx.port}"]}}}}
        result = send_due(overrides=overrides)
        assert list(result) == ["news"] and result["news"]["delivered"] == 1
        assert result["news"]["progress"]["waiting_chunks"] == 1 and result["news"]["state"] == "sending"
        assert send_due(overrides=overrides) == {}, "nothing more is due"
    assert [r for m in rx.received for r in m.recipients] == ["a@example.com"]
    assert "send_due" in transitions(home, "news")[-1].by


def test_a_campaigns_first_plan_is_its_first_move_from_no_state(tmp_path):
    home, _ = planned_campaign(tmp_path, recipients=3)
    assert [(m.seq, m.from_state, m.to_state) for m in transitions(home, "stopped")] == [(1, None, "planned")]


@pytest.mark.integration
@pytest.mark.slow
def test_a_send_the_error_budget_stopped_stays_sending_and_is_continued_by_send_not_resume(tmp_path, capsys):
    home, emails = planned_campaign(tmp_path, recipients=20)
    proc = mailflow_send(home, free_port(), MAILFLOW_SEND__ERROR_BUDGET="3")  # nothing listens there: the relay is down
    out, err, _ = finish(proc, 300)
    assert proc.returncode == 1, err
    assert "campaign 'stopped' stopped sending (still `sending`, not paused): 3 recipients in a row failed" in err
    assert "run `mailflow send` again to continue" in err and "resume" not in err
    assert state_of(home, "stopped") == "sending", "the message says what the state is"
    code, _, err = run(capsys, home, "campaigns", "resume", "stopped")
    assert (code, err.strip()) == (2, "mailflow: campaign 'stopped' is sending; only a paused campaign can be resumed; "
                                      "`mailflow send stopped` continues a send that stopped")


def test_show_counts_the_chunks_already_sent_apart_from_those_still_due(tmp_path, capsys):
    home = tmp_path / "home"
    write_plan(home, SPEC, [([f"c{c}r{i}@example.com" for i in range(2)], "A", None, False) for c in range(4)])
    record_transition(home, "news", "planned", "test")
    record_transition(home, "news", "sending", "test")

    def logged(chunk_id, *records):
        path = ledger_path(home, "news", chunk_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.writelines(json.dumps(ledger_record(sid, status, chunk_id=chunk_id)) + "\n" for sid, status in records)

    def chunks_line():
        code, out, _ = run(capsys, home, "campaigns", "show", "news")
        assert code == 0, out
        return next(line for line in out.splitlines() if line.startswith("chunks: "))

    assert chunks_line() == "chunks: 4 due"
    logged(0, (1, "delivered"), (2, "bounced"))
    logged(1, (3, "delivered"), (4, "suppressed"))
    logged(2, (5, "delivered"), (6, "deferred"))
    logged(3, (7, "delivered"))  # its second recipient not yet reached
    assert chunks_line() == ("chunks: 2 sent, 1 sent but for deferred recipients (`mailflow retry` resends them), "
                             "1 due")
    logged(2, (6, "delivered"))
    logged(3, (8, "delivered"))
    assert chunks_line() == "chunks: 4 sent"
    code, out, _ = run(capsys, home, "--json", "campaigns", "show", "news")
    schedule = json.loads(out)["schedule"]
    assert (schedule["sent"], schedule["deferred"], schedule["due"]) == (4, 0, 0)
