"""Human summaries the command prints (JSON output skips these)."""

from __future__ import annotations

import click

from tasks.report import report_markdown


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
        for run in r.get("validation", []):
            failed = [f"{e['rule']} ({e['unexpected']})" for e in run["expectations"] if not e["success"]]
            click.echo(f"  expectations: {'all passed' if not failed else 'failed ' + ', '.join(failed)}")
    if any(r["quarantined"] for r in results):
        click.echo("see the quarantine: mailflow sql \"select source, line, reason from quarantine order by ingested_at desc, line\"")


def send_line(counts: dict) -> str:
    parts = [f"{counts.get(k, 0)} {k}" for k in ("delivered", "deferred", "bounced", "failed")]
    return "sent: " + ", ".join(parts) + f"; {counts.get('skipped', 0)} already sent before"


def print_send(counts: dict) -> None:
    click.echo(send_line(counts))
    click.echo("run `mailflow aggregate` to load the outcomes into the warehouse")


def print_retry(counts: dict) -> None:
    if not counts.get("chunks"):
        click.echo("nothing deferred: no retry needed")
        return
    parts = [f"{counts.get(k, 0)} {k}" for k in ("delivered", "deferred", "bounced", "suppressed", "failed")]
    click.echo(f"retried {counts['chunks']} chunks: " + ", ".join(parts) + f"; {counts.get('not_due', 0)} not due yet")
    click.echo("run `mailflow aggregate` to load the outcomes into the warehouse")


def print_demo(d: dict) -> None:
    print_ingest(d["ingested"])
    p = d["planned"]
    click.echo(f"planned {p['campaign_id']}: {p['audience_size']} recipients in {p['chunk_count']} chunks")
    click.echo(send_line(d["sent"]))
    click.echo(f"aggregated: {d['aggregated']['deliveries']} deliveries in the warehouse\n")
    click.echo(report_markdown(d["report"]))
    click.echo(f"bounced: every recipient at {d['rejected_domain']} (the demo receiver answers 550 5.1.1)")
    click.echo(f"warehouse: {d['warehouse']}   (mailflow sql \"select status, count(*) from deliveries group by all\")")
    click.echo(f"maildir:   {d['maildir']}   (one file per delivered message under new/)")
    click.echo("Prefect UI: run `prefect server start`, open http://127.0.0.1:4200, then set "
               "PREFECT_API_URL=http://127.0.0.1:4200/api so later commands report there")
