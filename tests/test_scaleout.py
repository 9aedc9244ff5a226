"""Scale-out: two Prefect workers on one pool send the chunks of one campaign, every recipient exactly once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from uuid import uuid4

import duckdb
import polars as pl
import pytest

from mailflow.tasks.demo.receiver import Fault, Hold, Receiver
from tests.support.commands import planned_campaign
from tests.support.prefect_server import PREFECT, PrefectServer, start_worker, stop_process

ROOT = Path(__file__).resolve().parent.parent
POOL = "scaleout-test"
RECIPIENTS, CHUNK = 2000, 250
LIMIT = 600.0  # seconds: bounds on waits on 2 shared cores, not timing assumptions
RAN = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")  # printed by the flow run's own process, a child of its worker


def run(args: list[str], env: dict, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=LIMIT, start_new_session=True)
    assert done.returncode == 0, f"{args[:3]} exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def first_recipients(home: Path, n: int) -> list[str]:
    """The first recipient of each of the campaign's first `n` chunks."""
    manifest = json.loads((home / "campaigns" / "stopped" / "campaign.json").read_text())
    return [pl.read_parquet(home / "campaigns" / "stopped" / c["file"])["email"][0] for c in manifest["chunks"][:n]]


@pytest.mark.integration
@pytest.mark.slow
def test_two_workers_send_one_campaigns_chunks_each_recipient_once(tmp_path):
    home, emails = planned_campaign(tmp_path, recipients=RECIPIENTS, chunk_size=CHUNK)
    # Two chunks' first messages wait at DATA until both have arrived: with one run at a time per worker
    # (--limit 1), two chunk runs in flight at once are runs of two workers; no timing decides it.
    holds = {email: Hold() for email in first_recipients(home, 2)}
    faults = {email: Fault("DATA", hold=hold) for email, hold in holds.items()}
    with PrefectServer(tmp_path / "prefect") as server, Receiver(record=True, faults=faults) as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=server.api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                   MAILFLOW_REPO=str(ROOT), MAILFLOW_TRACKING__SECRET="test-secret", MAILFLOW_SEND__RATE="5000",
                   MAILFLOW_SMTP__POOLS__DEFAULT__RELAYS=f'["127.0.0.1:{receiver.port}"]',
                   MAILFLOW_SMTP__POOLS__DEFAULT__CONNECTIONS="4")
        mailflow = [sys.executable, "-m", "mailflow.cli", "--home", str(home)]
        run([*PREFECT, "work-pool", "create", POOL, "--type", "process"], env)
        run([*PREFECT, "--no-prompt", "deploy", "--name", "send-chunk", "--pool", POOL], env)
        run([*mailflow, "init"], env)  # the global rate limit every chunk run takes its slots from
        workers = [start_worker(server.api_url, POOL, ROOT, env, limit=1) for _ in range(2)]
        try:
            release = threading.Thread(target=lambda: [h.arrived.wait(LIMIT) for h in holds.values()]
                                       and [h.released.set() for h in holds.values()], daemon=True)
            release.start()
            sent = run([*mailflow, "--json", "send", "stopped", "--via-workers", "--skip-preflight"], env)
            both_in_flight = all(h.arrived.is_set() for h in holds.values())
        finally:
            for h in holds.values():
                h.released.set()
            for worker in workers:
                stop_process(worker)
        runs = [set(RAN.findall(worker.log_path.read_text(errors="replace"))) for worker in workers]
        for worker in workers:
            worker.log_path.unlink()

        assert both_in_flight, "two chunks were never on the wire at once"
        assert all(runs) and not runs[0] & runs[1], f"each worker ran its own chunks: {runs}"
        assert len(runs[0] | runs[1]) == RECIPIENTS // CHUNK  # one flow run per chunk
        result = json.loads(sent.stdout)
        assert result["delivered"] == RECIPIENTS and result["state"] == "sent"
        assert Counter(r for m in receiver.received for r in m.recipients) == Counter(dict.fromkeys(emails, 1))
        records = [json.loads(line) for p in (home / "ledger" / "stopped").glob("*.ndjson") for line in p.open()]
        outcomes = Counter(r["subscriber_id"] for r in records if r["status"] != "in_flight")
        assert len(outcomes) == RECIPIENTS and set(outcomes.values()) == {1}  # the union of the ledgers: each once

        run([*mailflow, "aggregate"], env)
    with duckdb.connect(str(home / "mailflow.duckdb"), read_only=True) as con:
        assert con.execute("SELECT status, count(DISTINCT subscriber_id) FROM deliveries WHERE campaign_id = 'stopped' "
                           "GROUP BY ALL").fetchall() == [("delivered", RECIPIENTS)]


def test_a_chunk_run_that_ends_badly_says_which_chunk_and_why():
    from prefect.states import Completed, Failed

    from mailflow.errors import NeedsAttention
    from mailflow.flows.workers import ChunkRun

    done, failed = ChunkRun(uuid4(), "brave-otter", "chunks/chunk-00001.parquet", lambda: {"delivered": 3}), []
    bad = ChunkRun(uuid4(), "calm-heron", "chunks/chunk-00002.parquet", lambda: {})
    for future in (done, bad):
        future.add_done_callback(failed.append)
    assert failed == []  # nothing ended yet
    done.finish(Completed())
    bad.finish(Failed(message="NeedsAttention: campaign 'stopped' paused: relay down"))
    assert failed == [done, bad] and done.result() == {"delivered": 3}
    with pytest.raises(NeedsAttention, match=r"chunk chunks/chunk-00002.parquet \(flow run calm-heron\) ended Failed: "
                                             r"NeedsAttention: campaign 'stopped' paused: relay down"):
        bad.result()
    late = []
    done.add_done_callback(late.append)  # added after the end: called at once
    assert late == [done]


@pytest.mark.integration
def test_via_workers_without_a_prefect_server_is_refused_in_one_line(tmp_path):
    home, _ = planned_campaign(tmp_path, recipients=4, chunk_size=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), MAILFLOW_TRACKING__SECRET="test-secret")
    done = subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), "send", "stopped", "--via-workers"],
                          env=env, capture_output=True, text=True, timeout=LIMIT)
    assert done.returncode == 2 and done.stderr == (
        "mailflow: --via-workers needs the Prefect server the workers use: set PREFECT_API_URL or run `mailflow server start`\n")
    assert not (home / "ledger").exists()


@pytest.mark.flow
def test_a_send_over_workers_without_the_send_chunk_deployment_says_how_to_deploy_it(tmp_path, prefect_harness):
    from mailflow.errors import MailflowError
    from mailflow.flows.workers import ChunkRuns
    from mailflow.settings import load_settings
    from mailflow.tasks.send.chunk import load_plan

    home, _ = planned_campaign(tmp_path, recipients=4, chunk_size=2)
    settings = load_settings(overrides={"home": str(home)}, environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})
    runs = ChunkRuns(home, "stopped", None, {"home": str(home)})
    try:
        with pytest.raises(MailflowError, match=r"no deployment 'send_chunk/send-chunk'.*prefect deploy --name send-chunk"):
            runs.submit(load_plan(settings, "stopped")[1][0])
    finally:
        runs.close()
