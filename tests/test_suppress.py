"""Send-time suppression: the snapshot, the logs written since, and their refresh."""

import polars as pl
import pytest

from mailflow.tasks.files.suppress import SuppressionCheck, SuppressionLog, write_snapshot


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_logs_are_seen_after_the_refresh_interval(tmp_path):
    clock = Clock()
    write_snapshot(tmp_path, pl.DataFrame({"email": ["a@example.com"], "cause": ["unsubscribed"]}))
    check = SuppressionCheck(tmp_path, refresh=2.0, clock=clock)
    assert check.cause("a@example.com") == "unsubscribed" and check.cause("b@example.com") is None
    SuppressionLog(tmp_path, "tracking").append("b@example.com", "unsubscribe", "test")
    assert check.cause("b@example.com") is None  # read at most every 2 s
    clock.now = 2.0
    assert check.cause("b@example.com") == "unsubscribe"


def test_a_half_written_log_line_waits_for_its_end(tmp_path):
    log = SuppressionLog(tmp_path, "bounces")
    log.append("a@example.com", "bounce:user_unknown", "test")
    with log.path.open("ab") as fh:
        fh.write(b'{"email": "b@example.com", "cau')
    check = SuppressionCheck(tmp_path, refresh=0.0)
    assert check.cause("a@example.com") == "bounce:user_unknown" and check.cause("b@example.com") is None
    with log.path.open("ab") as fh:
        fh.write(b'se": "complaint", "source": "t", "at": "2026-11-28T00:00:00+00:00"}\n')
    assert check.cause("b@example.com") == "complaint"


def test_the_shared_check_is_reused_until_the_snapshot_is_replaced(tmp_path):
    write_snapshot(tmp_path, pl.DataFrame({"email": ["a@example.com"], "cause": ["bounced"]}))
    first = SuppressionCheck.shared(tmp_path)
    assert SuppressionCheck.shared(tmp_path) is first
    write_snapshot(tmp_path, pl.DataFrame({"email": ["c@example.com"], "cause": ["blocked"]}))
    second = SuppressionCheck.shared(tmp_path)
    assert second is not first and second.cause("c@example.com") == "blocked"
    SuppressionLog(tmp_path, "send").append("d@example.com", "bounce:user_unknown", "test")
    assert SuppressionCheck.shared(tmp_path).cause("d@example.com") == "bounce:user_unknown"  # a new chunk re-reads logs


def test_log_lines_the_snapshot_already_holds_are_not_applied_again(tmp_path):
    log = SuppressionLog(tmp_path, "tracking")
    log.append("a@example.com", "unsubscribe", "test")  # loaded by aggregate, then re-subscribed since
    snapshot = pl.DataFrame({"email": ["z@example.com"], "cause": ["blocked"]})
    write_snapshot(tmp_path, snapshot, {str(log.path): log.path.stat().st_size, "/elsewhere/x.ndjson": 9})
    log.append("b@example.com", "unsubscribe", "test")  # after the snapshot
    check = SuppressionCheck(tmp_path)
    assert check.cause("a@example.com") is None and check.cause("b@example.com") == "unsubscribe"
    assert check.cause("z@example.com") == "blocked"


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    from mailflow.tasks.files.atomic import atomic_write

    path = tmp_path / "campaign.json"
    atomic_write(path, lambda p: p.write_text("old"))

    def half_then_fail(p):
        p.write_text("ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["campaign.json"]
