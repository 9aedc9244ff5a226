"""Tracking benchmark (issue 11): opens and clicks under wrk on loopback, to a bare GIF handler; every answer found in the event logs.

The service runs as a user runs it (`mailflow track serve --workers W --port P`, a subprocess,
stopped with SIGTERM and waited for) on a home holding a really planned campaign whose composed
messages gave the URLs (bench/track_data.py). Debian's wrk (-t1, BENCH_TRACK_CONNECTIONS
connections) cycles through them with bench/track_wrk.lua, which counts answers by status:
(a) open pixels, (b) clicks, /c and /r alternating (302), (c) a mix of one open to two clicks.
The baseline, in the same run and on the same URLs: bench/track_bare.py (uvicorn with the
service's own options and workers, answering the same 43-byte GIF without routing, verifying or
logging), measured before and after each load, since other work on the machine shifts both: a
load's ratio is to the mean of the bare runs either side of it. After the service has stopped,
the events in home/events are counted by type: each 200 of the pixel must be an open event and
each 302 a click; a request answered as wrk stopped may be logged without wrk counting it, so at
most `connections` more per wrk run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench import MissingTool, log, row
from bench.send_naive import free_port
from bench.track_data import SECRET, build, write_paths

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().with_name("track_wrk.lua")
RECIPIENTS = int(os.environ.get("BENCH_TRACK_RECIPIENTS", "3000"))
SECONDS = int(os.environ.get("BENCH_TRACK_SECONDS", "10"))  # each measured wrk run
WARMUP = int(os.environ.get("BENCH_TRACK_WARMUP", "2"))  # one run per server first, not reported
CONNECTIONS = int(os.environ.get("BENCH_TRACK_CONNECTIONS", "64"))
WORKERS = int(os.environ.get("BENCH_TRACK_WORKERS", "2"))
TARGET_RATE, TARGET_P99_MS = 5_000.0, 50.0  # the issue's
START_SECONDS = STOP_SECONDS = 60.0  # generous: 2 cores shared with other work
EXPECTED = {"opens": {"200": "open"}, "clicks": {"302": "click"}, "mix": {"200": "open", "302": "click"}}


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        raise MissingTool("wrk not found: `apt-get install wrk` (Debian's HTTP load generator)")
    return path


def run() -> list[dict]:
    wrk_path()
    work = Path(tempfile.mkdtemp(prefix="mailflow-bench-track-"))
    try:
        facts = measure(work, RECIPIENTS, SECONDS, WARMUP, CONNECTIONS, WORKERS)
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"track: BENCH_KEEP set, data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rows_for(facts)


def measure(work: Path, recipients: int, seconds: int, warmup: int, connections: int, workers: int) -> dict:
    """Plan, serve, load and count; every figure the rows need, as plain data."""
    track_port, bare_port = free_port(), free_port()
    log(f"track: planning and composing a {recipients}-recipient campaign")
    data = build(work, recipients, f"http://127.0.0.1:{track_port}")
    files = {name: write_paths(work / f"{name}.paths", paths) for name, paths in data.scenarios().items()}
    env = {**os.environ, "MAILFLOW_TRACKING__SECRET": SECRET}
    facts = {"recipients": recipients, "connections": connections, "workers": workers, "seconds": seconds,
             "load_before": os.getloadavg()[0], "track": {}, "bare": []}

    def load(port: int, name: str, secs: int) -> dict:
        return wrk(port, files[name], secs, connections)

    bare = launch([sys.executable, "-m", "bench.track_bare", str(bare_port), str(workers)], env, ROOT,
                  work / "bare.log")
    try:  # the service from `work`, where no mailflow.toml of the checkout's can reach it; both start at once
        track = launch([str(Path(sys.executable).with_name("mailflow")), "--home", str(data.home), "track", "serve",
                        "--workers", str(workers), "--port", str(track_port)], env, work, work / "track.log")
        try:
            ready(bare, bare_port, "/", work / "bare.log")
            ready(track, track_port, "/healthz", work / "track.log")
            runs = []  # every wrk run against the service, with the event type each status acknowledges
            if warmup:
                load(bare_port, "mix", warmup)
                runs.append((load(track_port, "mix", warmup), EXPECTED["mix"]))
            facts["bare"].append(load(bare_port, "mix", seconds))
            for name in EXPECTED:  # each between two bare runs: load from elsewhere drifts within a minute
                log(f"track: wrk {seconds}s of {name}, {connections} connections, load average {os.getloadavg()[0]:.2f}")
                facts["track"][name] = load(track_port, name, seconds)
                runs.append((facts["track"][name], EXPECTED[name]))
                facts["bare"].append(load(bare_port, "mix", seconds))
        finally:
            facts["stopped"] = stop(track)
    finally:
        stop(bare)
    facts["load_after"] = os.getloadavg()[0]
    facts["acknowledged"], facts["unexpected"] = acknowledged(runs)
    facts["errors"] = sum((Counter({k: v for k, v in r["errors"].items() if k != "status"}) for r, _ in runs), Counter())
    # a request per connection may be answered (and logged) as wrk stops, or after an error wrk did not count
    facts["slack"] = len(runs) * connections + facts["errors"].total()
    facts["events"], facts["foreign"] = count_events(data.home, data.campaign_id)
    return facts


def launch(cmd: list[str], env: dict, cwd: Path, output: Path) -> subprocess.Popen:
    """The server `cmd` in a session of its own (SIGINT reset: a background job inherits it ignored), its output to `output`."""
    with output.open("wb") as sink:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def ready(proc: subprocess.Popen, port: int, probe: str, output: Path) -> None:
    """Return once the server answers `probe` on 127.0.0.1:port with a 200."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(proc.args[:5])} exited {proc.returncode}: {output.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)  # polling until it listens, bounded by START_SECONDS
    raise RuntimeError(f"{' '.join(proc.args[:5])} did not answer on 127.0.0.1:{port} within {START_SECONDS:.0f}s")


def stop(proc: subprocess.Popen) -> str | None:
    """SIGTERM to the server (its workers finish, flush and fsync), waited for; None, or what went wrong."""
    if proc.poll() is not None:
        return f"exited {proc.returncode} before it was stopped"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"still running {STOP_SECONDS:.0f}s after SIGTERM: killed"
    return None if code == 0 else f"exited {code} on SIGTERM"


def wrk(port: int, paths: Path, seconds: int, connections: int) -> dict:
    """One wrk run; the JSON line track_wrk.lua's done() prints (latencies in µs, statuses as text)."""
    cmd = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(SCRIPT),
           f"http://127.0.0.1:{port}", "--", str(paths)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK-JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return json.loads(lines[-1].removeprefix("WRK-JSON "))


def acknowledged(runs: list[tuple[dict, dict[str, str]]]) -> tuple[Counter, Counter]:
    """Events the answers acknowledged, by type, over wrk runs each with its status -> event type;
    and the answers with any other status, by status."""
    events, other = Counter(), Counter()
    for result, expected in runs:
        for status, count in result["statuses"].items():
            if status in expected:
                events[expected[status]] += count
            else:
                other[status] += count
    return events, other


def count_events(home: Path, campaign_id: str) -> tuple[Counter, int]:
    """Event lines by type in home/events/*.ndjson, and how many name another campaign."""
    counts, foreign = Counter(), 0
    for path in sorted((home / "events").glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            event = json.loads(line)
            counts[event["type"]] += 1
            foreign += event["campaign_id"] != campaign_id
    return counts, foreign


def accounting_problem(acknowledged: Counter, events: Counter, slack: int, unexpected: Counter | None = None,
                       foreign: int = 0, stopped: str | None = None, errors: Counter | None = None) -> str | None:
    """Every acknowledged request logged, no more than `slack` beyond it, nothing but 200s and 302s,
    no socket error or timeout."""
    problems = [f"{kind}: {acknowledged[kind]} acknowledged, {events[kind]} logged (missing {acknowledged[kind] - events[kind]})"
                for kind in sorted(acknowledged) if events[kind] < acknowledged[kind]]
    problems += [f"{kind}: {events[kind]} logged, more than {acknowledged[kind]} acknowledged + {slack} in flight"
                 for kind in sorted(events) if events[kind] > acknowledged[kind] + slack]
    if unexpected:
        problems.append(f"answers other than the expected 200/302: {dict(sorted(unexpected.items()))}")
    if errors and errors.total():
        problems.append(f"wrk saw socket errors or timeouts: {dict(sorted((k, v) for k, v in errors.items() if v))}")
    if foreign:
        problems.append(f"{foreign} events name another campaign")
    if stopped:
        problems.append(f"the service {stopped}")
    return "track: " + "; ".join(problems) if problems else None


def speed_problem(name: str, result: dict) -> str | None:
    rate, p99 = rate_of(result), result["latency_us"]["p99"] / 1000
    if rate < TARGET_RATE or p99 >= TARGET_P99_MS:
        return f"track {name}: {rate:.0f} req/s, p99 {p99:.1f} ms (targets >= {TARGET_RATE:.0f} req/s, p99 < {TARGET_P99_MS:.0f} ms)"
    return None


def rate_of(result: dict) -> float:
    return result["requests"] / (result["duration_us"] / 1e6)


def rows_for(facts: dict) -> list[dict]:
    setup = f"{facts['workers']} workers, wrk -t1 -c{facts['connections']} {facts['seconds']}s"
    bare_rates = [rate_of(r) for r in facts["bare"]]
    bare = sum(bare_rates) / len(bare_rates)
    beside = {name: (bare_rates[i] + bare_rates[i + 1]) / 2 for i, name in enumerate(facts["track"])}
    log(f"track: bare GIF runs {', '.join(f'{r:.0f}' for r in bare_rates)} req/s; "
        f"load average {facts['load_before']:.2f} before, {facts['load_after']:.2f} after")
    problem = accounting_problem(facts["acknowledged"], facts["events"], facts["slack"], facts["unexpected"],
                                 facts["foreign"], facts["stopped"], facts["errors"])
    bare_p99 = max(r["latency_us"]["p99"] for r in facts["bare"]) / 1000
    runs = len(bare_rates)
    rows = [row(f"track: bare ASGI GIF, uvicorn uvloop+httptools ({setup}, mean of {runs} runs)", bare, "req/s", "-", 1.0),
            row(f"track: bare ASGI GIF p99 latency (worst of {runs} runs)", bare_p99, "ms")]
    labels = {"opens": "open pixel /o (200)", "clicks": "clicks /c + /r (302)", "mix": "mix 1 open : 2 clicks"}
    for name, result in facts["track"].items():
        rate, slow = rate_of(result), speed_problem(name, result)
        latency = result["latency_us"]
        rows += [row(f"track: {labels[name]} ({setup})", rate, "req/s", "bare either side", rate / beside[name],
                     slow or problem),
                 row(f"track: {labels[name]} p50 latency", latency["p50"] / 1000, "ms"),
                 row(f"track: {labels[name]} p99 latency (target < {TARGET_P99_MS:.0f} ms)", latency["p99"] / 1000, "ms",
                     f"{TARGET_P99_MS:.0f} ms", latency["p99"] / 1000 / TARGET_P99_MS, slow)]
    for kind in ("open", "click"):
        acked, logged = facts["acknowledged"][kind], facts["events"][kind]
        rows.append(row(f"track: {kind} events logged of answers acknowledged (all runs)", logged, f"of {acked}", "-",
                        logged / acked if acked else None, problem))
    rows.append(row("track: load average (1 min) after the run", facts["load_after"], "procs"))
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    rows = run()
    print(table(rows))
    for problem in sorted({r["problem"] for r in rows if r.get("problem")}):
        print(f"PROBLEM: {problem}", file=sys.stderr)
