"""Human summaries the command prints (JSON output skips these)."""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import TextIO

import click

# The task modules (they bring Polars, DuckDB, NumPy: ~1 s) are imported where they are needed, not by every command


def print_rows(names: list[str], rows: list[tuple]) -> None:
    if not names:
        return
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    click.echo("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def print_ingest(results: list[dict]) -> None:
    for r in results:
        note = " (same file ingested before: nothing changed)" if r["already_ingested"] else f" in {r['seconds']:.1f} s"
        click.echo(
            f"{r['source']}: {r['rows_read']} rows read = {r['accepted']} new + {r['updated']} updated"
            f" + {r['unchanged']} unchanged + {r['quarantined']} quarantined{note}"
        )
        if r.get("resubscribes_refused"):
            click.echo(f"  {r['resubscribes_refused']} rows asked to re-subscribe an unsubscribed address and were not allowed"
                       " (needs --allow-resubscribe and consent newer than the unsubscribe)")
        if r.get("opt_outs"):
            click.echo(f"  {r['opt_outs']} addresses opted out: suppressed, and unsubscribed where they were subscribers"
                       " (even from quarantined rows)")
        if r.get("needs_smtputf8"):
            click.echo(f"  {r['needs_smtputf8']} addresses have a non-ASCII local part: kept, marked needs_smtputf8, and sent"
                       " only through a relay that offers SMTPUTF8 (elsewhere each fails alone, with the reason)")
        for run in r.get("validation", []):
            failed = [f"{e['rule']} ({e['unexpected']})" for e in run["expectations"] if not e["success"]]
            click.echo(f"  expectations: {'all passed' if not failed else 'failed ' + ', '.join(failed)}")
    if any(r["quarantined"] for r in results):
        click.echo("see the quarantine: mailflow sql \"select source, line, count, reason from quarantine order by ingested_at desc, line\"")


# What the A/B groups that are not variants get, in the words plan, show and report use.
GROUP_NOTES = {"remainder": "held for the A/B winner", "holdout": "mailed nothing"}


def print_plan(d: dict) -> None:
    """matched − excluded (by rule) = planned; the split; when it goes."""
    again = " (re-planned)" if d["replanned"] else " (it has started sending: the plan is kept)" if d["already_planned"] else ""
    click.echo(f"campaign {d['campaign_id']}: {d['status']}{again}, {d['audience_size']:,} recipients in "
               f"{d['chunk_count']:,} chunks")
    excluded = sum(d["excluded"].values())
    why = ": " + ", ".join(f"{rule} {n:,}" for rule, n in d["excluded"].items()) if excluded else ""
    click.echo(f"  matched {d['matched']:,}, excluded {excluded:,}{why}")
    if len(d["variants"]) > 1:
        click.echo("  split: " + ", ".join(f"{name} {n:,}" + (f" ({GROUP_NOTES[name]})" if name in GROUP_NOTES else "")
                                           for name, n in d["variants"].items()))
    if d.get("schedule"):
        click.echo(f"  chunks: {schedule_words(d['schedule'])}")
    click.echo(f"  files: {d['campaign_dir']}")


def short_time(moment) -> str:
    from mailflow.tasks.send.schedule import short_time as when

    return when(moment)


def schedule_words(s: dict) -> str:
    """'3 sent, 1 sent but for deferred recipients, 2 due, 4 waiting (first due 2026-12-03T00:00Z), 5 held for the
    A/B winner' (sent ones only from `campaigns show`, which reads the ledgers)."""
    parts = [f"{s['sent']} sent"] if s.get("sent") else []
    if s.get("deferred"):
        parts.append(f"{s['deferred']} sent but for deferred recipients (`mailflow retry` resends them)")
    if s["due"] or not parts:
        parts.append(f"{s['due']} due")
    if s["waiting"]:
        parts.append(f"{s['waiting']} waiting (first due {short_time(s['next_due'])}; `mailflow send --due` sends each then)")
    if s["held"]:
        parts.append(f"{s['held']} held for the A/B winner")
    return ", ".join(parts)


def outcome_parts(counts: dict) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("delivered", "deferred", "bounced", "suppressed", "failed"))


def send_line(counts: dict) -> str:
    doubt = counts.get("in_doubt", 0)  # on the wire when an earlier send was killed: left alone (send.resend_in_doubt)
    return ("sent: " + outcome_parts(counts) + f"; {counts.get('skipped', 0)} already sent before"
            + (f"; {doubt} in doubt, not resent" if doubt else ""))


STOPPED = {"pause": "paused", "cancel": "cancelled"}


def print_send(result: dict) -> None:
    touched = any(result.get(k, 0) for k in ("delivered", "deferred", "bounced", "suppressed", "failed", "skipped", "in_doubt"))
    click.echo(send_line(result) if touched else "nothing sent: no chunk is due yet")
    for line in standing_lines(result):
        click.echo(line)
    if touched:
        click.echo("run `mailflow aggregate` to load the outcomes into the warehouse")


def standing_lines(result: dict) -> list[str]:
    """Where the campaign stands after a send: its state, what waits and why."""
    p, cid = result.get("progress"), result.get("campaign_id")
    if not p:
        return []
    lines = []
    if result.get("stopped"):
        hint = f"; `mailflow campaigns resume {cid}` continues it" if result["stopped"] == "pause" else ""
        lines.append(f"{STOPPED[result['stopped']]} while sending: {p['pending']} recipients left pending{hint}")
    if p["waiting_chunks"]:
        one = p["waiting_chunks"] == 1
        lines.append(f"{p['waiting_chunks']} chunk{'' if one else 's'} wait{'s' if one else ''} until {short_time(p['next_due'])} "
                     f"(`mailflow send --due` sends {'it' if one else 'them'} then)")
    if p["held"]:
        lines.append(f"{p['held']} recipients held for the A/B winner")
    if p["deferred"]:
        lines.append(f"{p['deferred']} deferred; next retry {short_time(p['next_retry'])} (`mailflow retry`)")
    lines.append(f"campaign {cid}: {result.get('state')}")
    return lines


def print_due(results: dict) -> None:
    if not results:
        click.echo("no campaign has chunks due")
    for cid, result in results.items():
        click.echo(f"{cid}: " + (f"not sent: {result['error']}" if "error" in result else send_line(result)))
        for line in standing_lines(result)[:-1]:
            click.echo(f"  {line}")


def print_retry(counts: dict) -> None:
    if not counts.get("chunks"):
        click.echo("nothing deferred: no retry needed")
        return
    click.echo(f"retried {counts['chunks']} chunks: " + outcome_parts(counts) + f"; {counts.get('not_due', 0)} not due yet")
    if counts.get("busy"):
        click.echo(f"{counts['busy']} chunks are being sent right now; their deferred recipients wait for the next retry")
    click.echo("run `mailflow aggregate` to load the outcomes into the warehouse")


def progress_line(done: int, audience: int, rate: float, totals: dict, width: int = 100) -> str:
    """One line of the send's progress bar: recipients with an outcome of the audience, speed, outcomes."""
    share = min(done / audience, 1.0) if audience else 1.0
    eta = f"  eta {duration((audience - done) / rate)}" if rate > 0 and done < audience else ""
    tail = (f" {share:6.1%}  {done:,}/{audience:,}  {rate:,.0f} msgs/s{eta}  "
            f"delivered {totals.get('delivered', 0):,}  deferred {totals.get('deferred', 0):,}  "
            f"bounced {totals.get('bounced', 0):,}")
    cells = max(10, min(40, width - len(tail) - 2))
    filled = int(share * cells)
    return f"[{'#' * filled}{'.' * (cells - filled)}]{tail}"[:width]


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Speed:
    """Recipients per second from (time, done) samples: over the last `window` seconds while
    the send runs, and over this run's sending time at the end. Recipients an earlier run
    logged and the wait for Prefect to start count in neither."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()
        self.base: int | None = None  # done at the first sample
        self.idle_until = self.last_change = 0.0  # the run's sending time lies between these

    def add(self, now: float, done: int) -> float:
        if self.base is None or done == self.base:
            self.base, self.idle_until = done, now
        elif done != self.samples[-1][1]:
            self.last_change = now
        self.samples.append((now, done))
        while now - self.samples[0][0] > self.window:
            self.samples.popleft()
        start, first = self.samples[0]
        return (done - first) / (now - start) if now > start else 0.0

    def average(self) -> float:
        if self.base is None or self.last_change <= self.idle_until:
            return 0.0
        return (self.samples[-1][1] - self.base) / (self.last_change - self.idle_until)


class ProgressBar:
    """Redraws the progress line on a terminal from a ledger tally, in a thread, until stopped;
    `poll` is a LedgerTally's poll. The last line stays, with the run's average speed."""

    def __init__(self, poll, audience: int, stream: TextIO, interval: float = 0.5):
        self.poll, self.audience, self.stream, self.interval = poll, audience, stream, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailflow-progress", daemon=True)
        self.speed = Speed()

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                self.draw()
                if self._stop.wait(self.interval):
                    break
            self.draw(final=True)
            self.stream.write("\n")
        except Exception:  # noqa: BLE001 - the bar is a view: whatever breaks it (a closed terminal) must not stop the send
            pass

    def draw(self, final: bool = False) -> None:
        tally = self.poll()
        rate = self.speed.add(time.monotonic(), tally.done)
        width = shutil.get_terminal_size().columns - 1  # the last column would wrap on some terminals
        line = progress_line(tally.done, self.audience, self.speed.average() if final else rate, tally.totals, width)
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()


def events_line(d: dict) -> str:
    """What the aggregate made of the event logs: events added, repeats, rejects and where to see them, bytes waiting."""
    def counted(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    line = f"loaded {counted(d['events_loaded'], 'event')} from {counted(d['event_files'], 'event log')}"
    if d["events_repeated"]:
        line += f"; {d['events_repeated']} repeated an event already loaded (counted once)"
    if d["event_lines_rejected"]:
        line += (f"; {counted(d['event_lines_rejected'], 'line')} rejected "
                 "(mailflow sql \"select * from event_rejects order by rejected_at desc\")")
    if d["event_bytes_waiting"]:
        line += f"; {d['event_bytes_waiting']} bytes of unfinished last lines wait for the next run"
    return line


def print_aggregate(d: dict) -> None:
    click.echo(f"loaded {d['records_read']} ledger records; {d['files_loaded']} file{'' if d['files_loaded'] == 1 else 's'} grew "
               "(ledgers, suppression logs, campaign moves); "
               f"{d['deliveries']} deliveries and {d['suppressions']} suppressed addresses in the warehouse")
    click.echo(events_line(d))
    for pool, day in (d.get("warmup") or {}).items():
        click.echo(f"warm-up of {pool!r}: {day['day']} at step {day['step']}, {day['verdict']}: {day['why']}")


def readers_line(engaged: dict[str, dict[str, int]]) -> str:
    """What the demo's simulated readers did through the tracking service, per variant."""
    variants = sorted(set().union(*engaged.values()))
    if not variants:
        return "readers: nothing new to read (the sampled messages were read in an earlier run)"
    return "readers (simulated over HTTP): " + "; ".join(
        f"{v} opened {engaged['opened'].get(v, 0)} ({engaged['opens'].get(v, 0)} pixel fetches), "
        f"clicked {engaged['clicked'].get(v, 0)}, unsubscribed {engaged['unsubscribed'].get(v, 0)}" for v in variants)


def print_demo(d: dict) -> None:
    print_ingest(d["ingested"])
    print_plan(d["planned"])
    from mailflow.cli.preflight import print_checks  # late, as print_decision below

    print_checks(d["planned"]["campaign_id"], d["sent"].get("preflight", []))
    click.echo(send_line(d["sent"]))
    click.echo(readers_line(d["engaged"]))
    click.echo(f"aggregated: {d['aggregated']['deliveries']} deliveries and {d['aggregated']['events_loaded']} events "
               f"loaded; {d['aggregated']['suppressions']} addresses suppressed (hard bounces and unsubscribes are not "
               "mailed again)\n")
    from mailflow.tasks.aggregate.report_text import report_markdown

    click.echo(report_markdown(d["report"]))
    from mailflow.cli.ab import print_decision  # it prints send lines from here: imported late, not in a cycle

    print_decision(d["ab"])
    click.echo(f"bounced: every recipient mailed at {d['rejected_domain']} (the demo receiver answers 550 5.1.1)")
    if "bounces" in d:
        b = d["bounces"]
        kinds = ", ".join(f"{n} {kind}" for kind, n in b["kinds"].items()) or "none"
        click.echo(f"bounce mailbox: fetched {b['fetched']} message(s) from {b['maildir']} ({kinds}; {b['unmapped']} unmapped): "
                   f"DSNs for {b['late_domain']} (accepted at SMTP time, bounced later), auto-replies from {b['away_domain']}")
    click.echo(f"warehouse: {d['warehouse']}   (mailflow sql \"select status, count(*) from deliveries group by all\")")
    click.echo(f"report:    {d['html_report']}   (one self-contained page with charts: open it in a browser)")
    click.echo(f"maildir:   {d['maildir']}   (one file per delivered message; those the readers opened are under cur/)")
    if d.get("prefect_ui"):
        click.echo(f"Prefect UI: {d['prefect_ui']}   (the demo's flow runs, their tasks, logs and report artifacts)")
    else:
        click.echo("Prefect UI: run `mailflow server start` once (UI at http://127.0.0.1:4200); later commands, "
                   "and the demo run again, report there and skip the temporary server")
    home = Path(d["warehouse"]).parent
    click.echo(f"studio:    mailflow --home {home} studio users add demo --role admin   (then, with a secret of your own:)\n"
               f"           MAILFLOW_STUDIO__SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
               f"mailflow --home {home} studio   and open http://127.0.0.1:8090 (log in as demo; TOTP is set up at first login)")
