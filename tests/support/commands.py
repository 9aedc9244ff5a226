"""Commands run as a user runs them: a planned campaign in a home, `mailflow` in a process of its own, waits with a bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def wait_for(condition, what, limit=60.0):
    deadline = time.monotonic() + limit  # a bound on the wait, not a timing assumption
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}: {condition.__doc__ or ''}")
        time.sleep(0.05)


def planned_campaign(tmp_path, recipients=160, chunk_size=20) -> tuple[Path, list[str]]:
    """A home with a campaign "stopped" planned for `recipients` addresses, without Prefect."""
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file
    from mailflow.tasks.plan.audience import plan
    from mailflow.tasks.plan.campaign import load_campaign
    from tests.support.inputs import write_csv

    home, emails = tmp_path / "home", [f"r{i:03d}@example.com" for i in range(recipients)]
    home.mkdir(mode=0o700)  # private, as the command makes it (else it says so when it tightens it)
    csv = write_csv(tmp_path / "s.csv", "email,first_name\n" + "".join(f"{e},R{i}\n" for i, e in enumerate(emails)))
    campaign = tmp_path / "stopped.yaml"
    campaign.write_text("name: stopped\nfrom: News <news@example.com>\nlists: [news]\ntemplate: newsletter\nsubject: Hi\n")
    with connect(home / "mailflow.duckdb") as con:
        ingest_file(con, csv, IngestOptions(list_name="news"))
        plan(con, home, load_campaign(campaign), chunk_size)
    return home, emails


SEND = ("send", "stopped", "--skip-preflight")  # these homes have no DNS of their own: tests/test_preflight.py


def mailflow_send(home, port, *args, **settings):
    """`mailflow send stopped` (or `mailflow ARGS...`) as a user starts it from a terminal: the leader of its own
    process group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    env.update(MAILFLOW_TRACKING__SECRET="test-secret", MAILFLOW_SMTP__POOLS__DEFAULT__RELAYS=f'["127.0.0.1:{port}"]',
               MAILFLOW_SMTP__POOLS__DEFAULT__CONNECTIONS="2", **settings)
    return subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--home", str(home), *(args or SEND)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


TEMPORARY_SERVER = "no Prefect server for this home: starting a temporary one"


def said(err: str) -> list[str]:
    """A command's stderr lines, less the one that says it starts a temporary Prefect server (no home server runs)."""
    return [line for line in err.splitlines() if TEMPORARY_SERVER not in line]


def ledger_lines(home) -> list[bytes]:
    return [line for p in sorted((home / "ledger").glob("*/*.ndjson")) for line in p.read_bytes().splitlines()]


def finish(proc, timeout):
    """(stdout, stderr, seconds until it exited); a command still running then is killed with its group."""
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still running {timeout} s after the signal")
    return out, err, time.monotonic() - start


def group_gone(pgid) -> bool:
    """No process of the command's group is left (its send workers included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
