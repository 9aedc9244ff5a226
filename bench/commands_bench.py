"""Command latency: `mailflow aggregate` (nothing new), `plan` of the demo campaign and `mailflow demo`, each timed
on the home's Prefect server (`mailflow server start`) against the same command on Prefect's temporary server.

Runs as a user does, one `mailflow` process per command, in a temporary home: first the demo on the temporary server
(the baseline, and the data the other commands work on), then aggregate and plan on the temporary server, then the
same with the server running, then the demo again, in a second home, reporting to that server (PREFECT_API_URL).
Fast commands are timed RUNS times and the median kept. Targets (issue 14): aggregate under 2 s, plan under 3 s,
demo under 30 s; the load average is printed with them, as other work on the machine stretches every wall time. The
CPU seconds of each command (its own and its children's, a temporary server's included) stretch far less: on an idle
machine they are close to what the wall time would be.
`python -m bench.commands_bench`, or `make bench BENCH="commands"`.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import log, row
from mailflow import SAMPLES_DIR, prefect_server

RUNS = int(os.environ.get("BENCH_COMMAND_RUNS", "3"))
TARGETS = {"aggregate": 2.0, "plan": 3.0, "demo": 30.0}


SERVER: dict[str, int] = {}  # the running server's PID, while one runs


def mailflow(home: Path, *args: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, CPU seconds) of one `mailflow` command, start to exit, the CPU of every process it started
    included (a temporary server's too); a failure stops the benchmark with its message."""
    start, cpu = time.perf_counter(), children_cpu(SERVER.get("pid"))
    done = subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), *args], capture_output=True,
                          text=True, env=env, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mailflow {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, children_cpu(SERVER.get("pid")) - cpu


def children_cpu(server_pid: int | None = None) -> float:
    """CPU seconds of this process's finished children, and of the running server's process tree (its work for
    the commands served is part of what they cost, as the temporary server's is)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + (tree_cpu(server_pid) if server_pid else 0.0)


def tree_cpu(pid: int) -> float:
    """utime + stime of a process and its live children, from /proc (Linux)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's PID
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def median(home: Path, *args: str, env: dict[str, str]) -> tuple[float, float]:
    """The run of median wall time among RUNS."""
    runs = sorted(mailflow(home, *args, env=env) for _ in range(RUNS))
    return runs[len(runs) // 2]


def plan_file(folder: Path) -> Path:
    """The demo campaign under a name of its own: planned again and again, never sent."""
    text = (SAMPLES_DIR / "campaign.yaml").read_text().replace("name: demo-newsletter", "name: bench-plan")
    path = folder / "bench-plan.yaml"
    path.write_text(text)
    return path


def run() -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="mailflow-bench-commands-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    home, campaign = work / "home", plan_file(work)
    home.mkdir(mode=0o700)
    try:
        log("commands: mailflow demo on the temporary server (the baseline; ~1 min) ...")
        temporary = {"demo": mailflow(home, "demo", env=env)}
        log("commands: aggregate and plan on the temporary server ...")
        temporary["aggregate"] = median(home, "aggregate", env=env)
        temporary["plan"] = median(home, "plan", str(campaign), env=env)
        log("commands: mailflow server start ...")
        begun = time.perf_counter()
        state, _ = prefect_server.start(home, free_port())
        start_seconds = time.perf_counter() - begun
        SERVER["pid"] = state.pid
        try:
            mailflow(home, "aggregate", env=env)  # the server's first answers (its caches) are not what a user waits on
            served = {"aggregate": median(home, "aggregate", env=env), "plan": median(home, "plan", str(campaign), env=env)}
            log("commands: mailflow demo reporting to the server ...")
            (work / "home2").mkdir(mode=0o700)
            served["demo"] = mailflow(work / "home2", "demo", env=env | {"PREFECT_API_URL": state.api_url})
        finally:
            SERVER.clear()
            prefect_server.stop(home)
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"commands: BENCH_KEEP set, homes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    rows = [row("commands: mailflow server start (once)", start_seconds, "s", note=f"load average {load:.1f}")]
    for name, label in (("aggregate", "aggregate, nothing new"), ("plan", "plan the demo campaign"), ("demo", "demo")):
        (wall, cpu), (base_wall, base_cpu) = served[name], temporary[name]
        met = "met" if wall < TARGETS[name] else "missed"
        rows.append(row(f"commands: {label} (server)", wall, "s", baseline=f"temporary server {base_wall:.1f} s",
                        ratio=wall / base_wall,
                        note=f"target under {TARGETS[name]:g} s {met} at load average {load:.1f} ({os.cpu_count()} cores)"))
        rows.append(row(f"commands: {label} (server), CPU", cpu, "s", baseline=f"temporary server {base_cpu:.1f} s",
                        ratio=cpu / base_cpu))
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
