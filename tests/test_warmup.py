"""Warm-up: the ramp's arithmetic, the plan's split of today and later days, the gate, and caps held across senders."""

import multiprocessing
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailflow.errors import MailflowError
from mailflow.settings_warmup import Ramp
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.files.warmup import DailyCounter, RampDay, judge_day, ramp_days
from mailflow.tasks.plan.audience import PlanOptions, plan
from mailflow.tasks.plan.warmup import judge, spread
from mailflow.tasks.send.chunk import send_chunk
from tests.support.campaign import SPEC, final_records, write_chunk
from tests.support.planning import add_subscribers, campaign, chunk_frames
from tests.support.warmup import mail_history, send_in_process, warmup_settings

START = date(2027, 1, 4)
NOON = datetime(2027, 1, 4, 12, tzinfo=UTC)

ramps = st.builds(Ramp, pool=st.just("p"), start_date=st.just(START), start=st.integers(1, 5000),
                  factor=st.floats(1.0, 4.0), max=st.integers(1, 10**7),
                  groups=st.dictionaries(st.sampled_from(["gmail", "yahoo"]), st.integers(1, 5000), max_size=2))


@given(ramps, st.sampled_from(["gmail", "yahoo", "other"]), st.integers(0, 60))
@example(Ramp("p", START, start=200, factor=1.5, max=1000), "other", 3)  # 200, 300, 450, 675, then warm
@example(Ramp("p", START, start=10, factor=1.0, max=11), "other", 50)  # a factor of 1 never warms
def test_the_ramp_grows_by_its_factor_and_ends_warm_at_max(ramp, group, step):
    first = ramp.groups.get(group, ramp.start)
    cap, following = ramp.cap(group, step), ramp.cap(group, step + 1)
    if cap is None:
        assert following is None, "once warm, a group stays warm"
        assert first * ramp.factor ** step >= ramp.max * (1 - 1e-9)
        return
    assert first <= cap < ramp.max
    assert cap == min(ramp.max - 1, int(first * ramp.factor ** step + 1e-9))
    assert following is None or cap <= following <= max(cap, int((cap + 1) * ramp.factor))
    if step == 0:
        assert cap == first


@given(ramps, st.integers(0, 20_000), st.integers(0, 10), st.integers(0, 6000))
def test_spread_puts_everyone_on_a_day_and_fills_each_day_but_the_last(ramp, size, step, used):
    try:
        days = spread(ramp, "other", size, step, used)
    except MailflowError:
        return  # more than a year of days: refused, with the settings to change
    assert sum(days) == size
    for offset, count in enumerate(days):
        cap = ramp.cap("other", step + offset)
        room = None if cap is None else max(cap - (used if offset == 0 else 0), 0)
        assert room is None or count <= room
        if offset < len(days) - 1:
            assert count == room, "a day before the last is filled to its cap"


def test_plan_sends_todays_cap_now_and_the_rest_on_later_days(con, home, tmp_path):
    add_subscribers(con, [f"y{i}@yahoo.com" for i in range(45)] + [f"g{i}@gmail.com" for i in range(10)]
                    + [f"o{i}@example.com" for i in range(5)])
    settings = warmup_settings(home, start_date="2027-01-04", start=10, factor=2, max=1000, groups={"gmail": 50})
    counter = DailyCounter(home, "default")
    for _ in range(4):  # another campaign of the pool sent 4 Yahoo messages today
        assert counter.take(START, "yahoo", 10)
    result = plan(con, home, campaign(tmp_path), chunk_size=100, options=PlanOptions(now=NOON, warmup=settings.warmup))
    warm = result.warmup
    assert (warm["pool"], warm["step"], warm["verdict"]) == ("default", 0, "start")
    assert warm["groups"]["yahoo"] == {"cap": 10, "used": 4, "today": 6, "later": 39, "last_day": "2027-01-06"}
    assert warm["groups"]["gmail"]["today"] == 10 and warm["groups"]["other"]["today"] == 5
    assert result.status == "scheduled" and result.audience_size == 60
    by_time = Counter()
    for entry, frame in chunk_frames(home, result.campaign_id):
        domains = set(frame["email"].str.split("@").list.get(1))
        by_time[entry["not_before"]] += frame.height
        if entry["not_before"]:
            assert domains == {"yahoo.com"}, "only the capped group waits"
            assert entry["groups"] == {"yahoo": frame.height}
    # day 0: 6 of 10 left; day 1: cap 20; day 2: the remaining 19 (cap 40)
    assert by_time == {None: 21, "2027-01-05T00:00:00+00:00": 20, "2027-01-06T00:00:00+00:00": 19}
    assert read_manifest(home, result.campaign_id)["audience_size"] == 60


def test_the_gate_holds_the_ramp_while_the_bounce_rate_is_over_its_threshold(con, home):
    settings = warmup_settings(home, start_date="2027-01-01", start=100)
    ramp = settings.warmup.ramp("default")
    judge_day(home, "default", date(2027, 1, 3), lambda last: RampDay("2027-01-03", 2, "advance", "fine"))
    mail_history(con, sent=200, bounced=20, complained=0, at=NOON - timedelta(days=2))  # 10% bounced, 5% allowed
    today = judge(con, home, settings.warmup, ramp, NOON)
    assert (today.step, today.verdict) == (2, "hold")
    assert "bounce rate 10.00% over 5.00%" in today.why
    again = judge(con, home, settings.warmup, ramp, NOON + timedelta(hours=3))
    assert again == today and len(ramp_days(home, "default")) == 2, "a day is judged once"


@pytest.mark.parametrize("bounced,complained,on_breach,step,verdict", [
    (2, 0, "hold", 3, "advance"),  # 1% bounced: under the threshold
    (2, 1, "hold", 2, "hold"),  # one complaint in 200 is 0.5%, over 0.1%
    (20, 0, "step_back", 1, "step_back"),
])
def test_the_gate_judges_bounces_and_complaints(con, home, bounced, complained, on_breach, step, verdict):
    settings = warmup_settings(home, warmup={"on_breach": on_breach}, start_date="2027-01-01", start=100)
    judge_day(home, "default", date(2027, 1, 3), lambda last: RampDay("2027-01-03", 2, "advance", "fine"))
    mail_history(con, sent=200, bounced=bounced, complained=complained, at=NOON - timedelta(days=1))
    mail_history(con, sent=300, bounced=300, complained=0, at=NOON - timedelta(days=1), transport="mx",
                 campaign_id="other-pool")  # another transport's trouble is not this pool's
    today = judge(con, home, settings.warmup, settings.warmup.ramp("default"), NOON)
    assert (today.step, today.verdict) == (step, verdict)


def test_a_gate_with_too_little_mail_lets_the_ramp_advance(con, home):
    settings = warmup_settings(home, start_date="2027-01-01", start=100)
    judge_day(home, "default", date(2027, 1, 3), lambda last: RampDay("2027-01-03", 2, "advance", "fine"))
    mail_history(con, sent=20, bounced=10, complained=0, at=NOON - timedelta(days=1))
    today = judge(con, home, settings.warmup, settings.warmup.ramp("default"), NOON)
    assert (today.step, today.verdict) == (3, "advance") and "too few to judge" in today.why


@pytest.mark.integration
def test_two_concurrent_senders_never_exceed_the_days_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")  # a sender process reads its secrets itself
    with Receiver(record=True) as rx:
        today = datetime.now(UTC).date().isoformat()
        settings = warmup_settings(tmp_path / "h", rx.port, start_date=today, start=1000, groups={"yahoo": 25})
        chunks = [write_chunk(tmp_path / f"c{n}.parquet", [f"y{n}-{i}@yahoo.com" for i in range(30)], chunk_id=n,
                              first_id=1 + 30 * n) for n in range(2)]
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(2) as pool:
            counts = pool.starmap(send_in_process, [(settings, SPEC, chunk) for chunk in chunks])
        received = [r for m in rx.received for r in m.recipients]
    assert sum(c.get("delivered", 0) for c in counts) == 25 == len(received) == len(set(received))
    assert sum(c.get("deferred", 0) for c in counts) == 35
    deferred = [r for n in range(2) for r in final_records(settings, n).values() if r["status"] == "deferred"]
    assert {(r["kind"], r["reason"]) for r in deferred} == {("soft", "warmup")}
    assert DailyCounter(settings.home, "default").used(datetime.now(UTC).date(), "yahoo") == 25


@pytest.mark.integration
def test_a_recipient_over_the_cap_goes_the_next_day_exactly_once(tmp_path):
    day = datetime(2030, 1, 7, 10, tzinfo=UTC)
    emails = [f"y{i}@yahoo.com" for i in range(8)]
    with Receiver(record=True) as rx:
        settings = warmup_settings(tmp_path / "h", rx.port, start_date="2030-01-01", start=5, factor=1.0)
        chunk = write_chunk(tmp_path / "c.parquet", emails)
        first = asyncio_send(settings, chunk, now=day)
        late_that_day = asyncio_send(settings, chunk, retry=True, now=day.replace(hour=23))
        # Four days on, past send.give_up_after (3 days): a warm-up deferral is no reason to give up.
        next_day = asyncio_send(settings, chunk, retry=True, now=day + timedelta(days=4))
        after = asyncio_send(settings, chunk, retry=True, now=day + timedelta(days=4, hours=1))
        received = Counter(r for m in rx.received for r in m.recipients)
    assert (first["delivered"], first["deferred"]) == (5, 3)
    assert late_that_day.get("delivered", 0) == 0 and late_that_day["not_due"] == 3
    assert next_day["delivered"] == 3 and not next_day.get("bounced")
    assert after.get("delivered", 0) == 0
    assert received == Counter({e: 1 for e in emails})
    records = final_records(settings)
    assert {r["status"] for r in records.values()} == {"delivered"}


def asyncio_send(settings, chunk, retry=False, now=None):
    import asyncio

    return asyncio.run(send_chunk(settings, SPEC, chunk, retry=retry, now=now))


@pytest.mark.parametrize("ramp,needle", [
    ({"start": 10}, "warmup.pools.default.start_date is required"),
    ({"start_date": "soon"}, "warmup.pools.default.start_date must be an ISO date"),
    ({"start_date": "2027-01-04", "factor": 0.5}, "warmup.pools.default.factor must be 1 or more"),
    ({"start_date": "2027-01-04", "groups": {"hotmail": 5}}, r"unknown provider group\(s\) \['hotmail'\]"),
    ({"start_date": "2027-01-04", "ramp": 5}, r"unknown key\(s\) \['ramp'\] in \[warmup.pools.default\]"),
])
def test_bad_warmup_settings_name_the_key(tmp_path, ramp, needle):
    with pytest.raises(MailflowError, match=needle):
        warmup_settings(tmp_path, **ramp)


def test_a_ramp_for_a_pool_that_does_not_exist_is_refused(tmp_path):
    from mailflow.settings import load_settings

    with pytest.raises(MailflowError, match=r"\[warmup.pools.fresh\] names no SMTP pool"):
        load_settings(overrides={"warmup": {"pools": {"fresh": {"start_date": "2027-01-04"}}}}, environ={})
    mx = load_settings(overrides={"warmup": {"pools": {"mx": {"start_date": "2027-01-04"}}}}, environ={})
    assert mx.warmup.ramp("mx").start == 200 and mx.warmup.ramp("default") is None


def test_a_send_reads_the_step_judged_for_its_day_and_never_advances_it_itself(tmp_path):
    from mailflow.tasks.send.warmup import WarmupCaps

    settings = warmup_settings(tmp_path, start_date="2027-01-01", start=10, factor=2)
    judge_day(settings.home, "default", date(2027, 1, 3), lambda last: RampDay("2027-01-03", 2, "advance", "fine"))
    caps = WarmupCaps(settings.home, settings.warmup.ramp("default"), clock=lambda: NOON)  # 2027-01-04: not judged
    assert caps.step(NOON.date()).step == 2 and caps.step(NOON.date()).verdict == "not judged"
    taken = [caps.take({"subscriber_id": n}, "yahoo") for n in range(41)]
    assert taken[:40] == [None] * 40  # step 2: 10 * 2**2
    assert taken[40].status == "deferred" and taken[40].cause == "warmup" and "cap" in taken[40].detail


@pytest.mark.flow
def test_plan_says_the_shaping_the_estimate_and_who_waits_for_warmup(prefect_harness, tmp_path, capsys):
    import json

    from mailflow.cli import main

    today = datetime.now(UTC).date().isoformat()
    (tmp_path / "mailflow.toml").write_text(f"[warmup.pools.default]\nstart_date = {today}\nstart = 5\nfactor = 2\n")
    (tmp_path / "s.csv").write_text("email,first_name\n" + "".join(f"y{i}@yahoo.com,Y\n" for i in range(12)))
    (tmp_path / "c.yaml").write_text("name: warm\nfrom: a@example.com\ntemplate: newsletter\nsubject: s\n")
    args = ["--home", str(tmp_path / "h"), "--config", str(tmp_path / "mailflow.toml")]
    assert main([*args, "ingest", str(tmp_path / "s.csv")]) == 0
    capsys.readouterr()
    assert main([*args, "--json", "plan", str(tmp_path / "c.yaml")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shaping"]["mode"] == "none" and result["estimate"]["groups"]["yahoo"]["recipients"] == 5
    assert result["warmup"]["groups"]["yahoo"] == {"cap": 5, "used": 0, "today": 5, "later": 7,
                                                   "last_day": (datetime.now(UTC).date() + timedelta(days=1)).isoformat()}
    assert result["status"] == "scheduled" and result["schedule"]["waiting"] == 1


def test_a_message_that_never_reached_a_server_gives_its_place_back(tmp_path):
    from mailflow.tasks.deliver.smtp import Cause, Outcome
    from mailflow.tasks.send.warmup import WarmupCaps

    settings = warmup_settings(tmp_path, start_date="2027-01-01", start=3)
    caps = WarmupCaps(settings.home, settings.warmup.ramp("default"), clock=lambda: NOON)
    assert [caps.take({"subscriber_id": n}, "gmail") for n in range(3)] == [None] * 3
    caps.settle({"subscriber_id": 0}, Outcome("delivered", 250))
    caps.settle({"subscriber_id": 1}, Outcome("deferred", None, None, "no connection", unsent=True))
    caps.settle({"subscriber_id": 2}, Outcome("deferred", None, None, "suspended", cause=Cause.SUSPENDED))
    assert DailyCounter(settings.home, "default").used(NOON.date(), "gmail") == 1
    assert caps.take({"subscriber_id": 3}, "gmail") is None and caps.take({"subscriber_id": 4}, "gmail") is None
    assert caps.take({"subscriber_id": 5}, "gmail").cause == Cause.WARMUP


@pytest.mark.integration
def test_many_recipients_over_the_cap_do_not_pause_the_send(tmp_path):
    with Receiver(record=True) as rx:
        settings = warmup_settings(tmp_path / "h", rx.port, start_date="2030-01-01", start=2)
        chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(40)])
        counts = asyncio_send(settings, chunk, now=datetime(2030, 1, 7, 10, tzinfo=UTC))
    # 38 deferrals in a row are more than send.error_budget (20), but none of them blames the relay.
    assert (counts["delivered"], counts["deferred"]) == (2, 38)
