"""Shaping by transport: a relay pool is not held to provider limits, straight to MX is, a pool's own setting wins;
and the estimate of a send's time per provider group."""

import asyncio
from datetime import UTC, datetime

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.deliver.shaping import ProviderLane
from mailflow.tasks.deliver.transport import effective_shaping
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.send.chunk import send_chunk
from mailflow.tasks.send.estimate import COMPOSE_SECONDS, estimate_send, send_estimate
from tests.support.campaign import SECRET_ENV, SPEC, TRACKING, write_chunk, write_plan

YAHOO_HEAVY = [f"y{i}@yahoo.com" for i in range(60)] + [f"g{i}@gmail.com" for i in range(10)] + ["o@example.com"]


def pool_settings(home, port=2525, **pool):
    return load_settings(overrides={
        "home": str(home), "tracking": TRACKING, "send": {"chunk_size": 100},
        "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": 4, **pool}}}}, environ=SECRET_ENV)


def test_a_relay_pool_has_no_provider_limits_by_default(tmp_path):
    shaping = effective_shaping(pool_settings(tmp_path), "default")
    assert shaping.mode == "none" and "shapes for itself" in shaping.why
    assert {name: lim.rate for name, lim in shaping.limits.items()} == dict.fromkeys(shaping.limits, 0.0)
    assert shaping.limits["yahoo"].connections == 4  # the pool's connections, not the provider's 3


def test_straight_to_mx_keeps_the_provider_limits(tmp_path):
    settings = load_settings(overrides={"home": str(tmp_path), "shaping": {"gmail": {"rate": 7}}}, environ={})
    shaping = effective_shaping(settings, "mx")
    assert shaping.mode == "providers"
    assert shaping.limits["yahoo"].rate == 20.0 and shaping.limits["gmail"].rate == 7.0
    off = load_settings(overrides={"home": str(tmp_path), "smtp": {"mx_shaping": "none"}}, environ={})
    assert effective_shaping(off, "mx").limits["yahoo"].rate == 0.0


@pytest.mark.parametrize("pool,yahoo_rate", [
    ({"shaping": "providers"}, 20.0),  # the [shaping] table (here its defaults)
    ({"providers": {"yahoo": {"rate": 40}}}, 40.0),  # per-pool overrides mean provider shaping
    ({"shaping": "none", "providers": {"yahoo": {"rate": 40}}}, 0.0),  # an explicit mode wins over overrides
])
def test_a_pools_own_setting_wins(tmp_path, pool, yahoo_rate):
    assert effective_shaping(pool_settings(tmp_path, **pool), "default").limits["yahoo"].rate == yahoo_rate


@pytest.mark.parametrize("pool,needle", [
    ({"shaping": "fast"}, "smtp.pools.default.shaping"),
    ({"providers": {"hotmail": {"rate": 1}}}, "smtp.pools.default.providers"),
    ({"providers": {"yahoo": {"rate": -1}}}, "smtp.pools.default.providers.yahoo.rate"),
])
def test_bad_pool_shaping_is_a_clear_error(tmp_path, pool, needle):
    with pytest.raises(MailflowError, match=needle.replace(".", r"\.")):
        pool_settings(tmp_path, **pool)


@pytest.mark.integration
def test_a_yahoo_heavy_send_through_a_relay_is_never_held_back(tmp_path):
    with Receiver(record=True) as rx:
        settings = pool_settings(tmp_path / "h", rx.port)
        lanes = {}
        counts = asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", YAHOO_HEAVY), lanes=lanes))
        delivered = sorted(r for m in rx.received for r in m.recipients)
    assert counts["delivered"] == len(YAHOO_HEAVY) and delivered == sorted(YAHOO_HEAVY)
    assert lanes["yahoo"].limits.rate == 0.0
    assert {name: lane.bucket.waits for name, lane in lanes.items()} == dict.fromkeys(lanes, 0)


@pytest.mark.integration
def test_a_pool_set_to_provider_shaping_is_held_to_the_yahoo_rate(tmp_path):
    with Receiver(record=True) as rx:
        settings = pool_settings(tmp_path / "h", rx.port, providers={"yahoo": {"rate": 50}})
        limits = effective_shaping(settings, "default").limits

        async def no_wait(seconds):
            pass

        # The lanes' clock stands still, so the bucket never refills: what it holds back is exact, and no one waits.
        lanes = {name: ProviderLane(name, limits[name], clock=lambda: 1000.0, sleep=no_wait) for name in ("yahoo", "gmail")}
        counts = asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", YAHOO_HEAVY), lanes=lanes))
    assert counts["delivered"] == len(YAHOO_HEAVY)
    assert lanes["yahoo"].limits.rate == 50.0
    assert lanes["yahoo"].bucket.waits == 10  # a burst of 50, then each of the other 10 waits for its token
    assert lanes["gmail"].bucket.waits == 0  # the [shaping] default for gmail, 50/s: 10 messages fit its burst


def test_the_estimate_of_a_relay_send_is_bound_by_compose_cpu(tmp_path):
    mix = {"gmail": 45_000, "microsoft": 20_000, "yahoo": 20_000, "other": 15_000}
    relay = estimate_send(effective_shaping(pool_settings(tmp_path), "default"), mix, processes=2)
    assert relay["bound"] == "compose CPU" and relay["seconds"] == pytest.approx(100_000 * COMPOSE_SECONDS["rsa-sha256"] / 2, rel=0.01)
    assert {g["bound"] for g in relay["groups"].values()} == {"compose CPU"}
    mx = estimate_send(effective_shaping(pool_settings(tmp_path), "mx"), mix, processes=2)
    assert mx["groups"]["yahoo"] == {"recipients": 20_000, "rate": 40.0, "bound": "provider limit", "seconds": 500.0}
    assert mx["seconds"] == 500.0  # the slowest group decides: 20 msgs/s per process, two processes
    capped = estimate_send(effective_shaping(pool_settings(tmp_path), "default"), mix, processes=2, global_rate=500)
    assert capped["bound"] == "global rate" and capped["seconds"] == 200.0


def test_send_estimate_reads_the_due_chunks_of_the_manifest(tmp_path):
    settings = pool_settings(tmp_path)
    write_plan(settings.home, SPEC, [(YAHOO_HEAVY, "A", None, False),
                                     (["later@yahoo.com"], "A", "2099-01-01T00:00:00+00:00", False)])
    pace = send_estimate(settings, SPEC.campaign_id, datetime.now(UTC), processes=4)
    assert pace["shaping"]["mode"] == "none" and pace["shaping"]["limits"]["yahoo"]["rate"] == 0.0
    # The test manifest carries no per-group counts: its rows count as `other`; one chunk due, one process.
    assert pace["estimate"]["recipients"] == len(YAHOO_HEAVY) and pace["estimate"]["processes"] == 1


def test_plan_and_send_say_the_shaping_the_estimate_and_the_warmup_split(tmp_path):
    from mailflow.cli.estimate import estimate_lines

    shaping = effective_shaping(pool_settings(tmp_path), "mx")
    pace = {"shaping": shaping.as_dict(),
            "estimate": estimate_send(shaping, {"yahoo": 20_000, "gmail": 45_000}, processes=2),
            "warmup": {"pool": "mx", "day": "2027-01-06", "step": 2, "verdict": "hold",
                       "why": "bounce rate 9.00% over 5.00% (last 7 days, 400 sent)",
                       "groups": {"yahoo": {"cap": 450, "used": 120, "today": 330, "later": 2670, "last_day": "2027-01-10"},
                                  "other": {"cap": None, "used": 0, "today": 5, "later": 0, "last_day": "2027-01-06"}}}}
    lines = estimate_lines(pace)
    assert lines[0].startswith("  shaping: providers (direct to MX: politeness toward each provider); ")
    assert "yahoo 20/s" in lines[0]
    assert lines[1] == "  estimate: 65,000 recipients due now in ~8m20s over 2 processes (at most 1,818 msgs/s, compose CPU)"
    assert "    yahoo: 20,000 at 40 msgs/s (provider limit), ~8m20s" in lines
    assert "  warm-up of 'mx': 2027-01-06 at step 2, hold: bounce rate 9.00% over 5.00% (last 7 days, 400 sent)" in lines
    assert "    yahoo: cap 450, 120 used; 330 go today, 2,670 on later days (last 2027-01-10)" in lines
    assert "    other: no cap (warm); 5 go today" in lines
