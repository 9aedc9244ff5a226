"""The service's event log: written before the answer, fsynced within a bounded delay, rotated by size and age."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mailflow.tasks.track import events as events_module
from mailflow.tasks.track.events import EventLog
from tests.support.clock import Clock
from tests.support.events import read_line
from tests.support.tracking import event_lines, send_campaign, service, track_settings


def lines(home):
    return [(p.name, json.loads(line)) for p in sorted((home / "events").glob("*.ndjson"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
            for line in p.read_text().splitlines()]


def test_events_reach_the_file_before_write_returns_with_an_id_and_time_and_files_rotate_by_size(tmp_path):
    async def run():
        log = EventLog(tmp_path, rotate_bytes=400, sync_seconds=0.5)
        for i in range(12):
            await log.write({"type": "open", "subscriber_id": i})
            assert json.loads(log.path.read_text().splitlines()[-1])["subscriber_id"] == i, "written before it returns"
        await log.close()
    asyncio.run(run())
    written = lines(tmp_path)
    assert [e["subscriber_id"] for _, e in written] == list(range(12))
    assert len({e["event_id"] for _, e in written}) == 12 and all(e["occurred_at"].endswith("+00:00") for _, e in written)
    files = sorted({name for name, _ in written})
    assert len(files) >= 3 and all(name.startswith(f"track-{os.getpid()}-") for name in files)
    assert all((tmp_path / "events" / name).stat().st_size < 400 + 200 for name in files)
    assert oct((tmp_path / "events" / files[0]).stat().st_mode & 0o777) == "0o600"


def test_files_rotate_by_age_even_when_idle_and_never_append_to_a_file_already_there(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / f"track-{os.getpid()}-0.ndjson").write_text('{"old": true}\n')  # a pid seen before

    async def run():
        clock = Clock()
        log = EventLog(tmp_path, rotate_seconds=60, sync_seconds=0.01, clock=clock)
        log.start()
        await log.write({"type": "open"})
        first = log.path
        clock.now += 61  # past its age with nothing written: the background closes it

        async def closed():
            while log.path is not None:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(closed(), 30)
        await log.write({"type": "click"})
        second = log.path
        await log.close()
        return first, second
    first, second = asyncio.run(run())
    assert (first.name, second.name) == (f"track-{os.getpid()}-1.ndjson", f"track-{os.getpid()}-2.ndjson")
    assert (tmp_path / "events" / f"track-{os.getpid()}-0.ndjson").read_text() == '{"old": true}\n'


def test_a_durable_write_is_fsynced_before_it_returns_and_concurrent_ones_share_fsyncs(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(events_module.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])

    async def run():
        log = EventLog(tmp_path, sync_seconds=1.0)  # no background round within the test
        await log.write({"type": "open"})
        assert log.unsynced == 1 and synced == []
        await log.write({"type": "unsubscribe"}, durable=True)
        assert log.unsynced == 0 and len(synced) == 1
        await asyncio.gather(*(log.write({"type": "unsubscribe"}, durable=True) for _ in range(50)))
        assert log.unsynced == 0
        fsyncs = len(synced) - 1
        await log.close()
        return fsyncs
    assert 1 <= asyncio.run(run()) < 50


def test_a_failed_write_raises_is_counted_and_the_next_event_starts_a_new_file(tmp_path, monkeypatch):
    real = os.write
    full = set()

    def write(fd, data):  # a disk that fills up after half a line
        if fd in full:
            real(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(events_module.os, "write", write)

    async def run():
        log = EventLog(tmp_path)
        await log.write({"type": "open", "n": 1})
        first = log.path
        full.add(log._fd)
        with pytest.raises(OSError):
            await log.write({"type": "open", "n": 2})
        full.clear()
        await log.write({"type": "open", "n": 3})
        second = log.path
        await log.close()
        return log, first, second
    log, first, second = asyncio.run(run())
    assert first != second and log.errors == 1 and log.counts["open"] == 2
    assert read_line(second.read_text())["n"] == 3, "the next event is a whole line in a file of its own"
    assert read_line(first.read_text().splitlines()[0])["n"] == 1 and not first.read_text().endswith("\n")


def test_the_background_fsyncs_what_was_written_within_its_interval_and_reports_the_lag(tmp_path):
    async def run():
        clock = Clock()
        log = EventLog(tmp_path, sync_seconds=0.05, clock=clock)
        log.start()
        await log.write({"type": "open"})
        clock.now += 0.3
        assert log.lag() == pytest.approx(0.3) and log.unsynced == 1

        async def synced():
            while log.unsynced:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(synced(), 30)  # a bound, not the expectation: the interval is 0.05 s
        assert log.lag() == 0.0
        await log.close()
    asyncio.run(run())


@pytest.mark.integration
def test_under_concurrent_requests_rotated_logs_hold_every_acknowledged_request_once(home, receiver):
    settings = track_settings(home, receiver.port, tracking={"log_rotate_bytes": 8192})
    with service(settings) as (sending, url):
        mails = send_campaign(sending, receiver, [f"r{i}@example.com" for i in range(4)])
        targets = [u for m in mails.values() for u in (m.open_url, *m.click_urls)]

        def hit(n):
            with httpx.Client(headers={"User-Agent": f"client-{n}"}) as http:
                return [(f"client-{n}", i) for i in range(40) if http.get(targets[(n + i) % len(targets)]).status_code in (200, 302)]

        with ThreadPoolExecutor(12) as pool:
            acknowledged = [a for answers in pool.map(hit, range(12)) for a in answers]
    assert len(acknowledged) == 12 * 40
    events = event_lines(home)
    counted: dict[str, int] = {}
    for e in events:
        counted[e["user_agent"]] = counted.get(e["user_agent"], 0) + 1
    assert counted == {f"client-{n}": 40 for n in range(12)}, "each acknowledged request once, none lost or doubled"
    assert len({e["event_id"] for e in events}) == len(events)
    files = list((home / "events").glob("*.ndjson"))
    assert len(files) >= 5, "the logs rotated while requests came in"
