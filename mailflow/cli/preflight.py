"""`mailflow preflight`: check that a campaign's mail will be accepted, before it is sent."""

from __future__ import annotations

from dataclasses import replace

import click

from mailflow.cli.context import Context, pass_ctx

MARKS = {"PASS": "PASS", "WARN": "WARN", "FAIL": "FAIL"}


@click.command()
@click.argument("campaign")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {check, status, detail, fix} (as the global --json does).")
@pass_ctx
def preflight(ctx: Context, campaign: str, as_json: bool) -> None:
    """Check a planned campaign (its id) or a campaign file: SPF, DKIM, DMARC, the bounce MX, the tracking host, RFC 8058
    headers, links, SpamAssassin score, size and images. Exit 1 when a check FAILs."""
    from mailflow.errors import NeedsAttention
    from mailflow.tasks.preflight.checks import FAIL
    from mailflow.tasks.preflight.preflight import run_preflight

    ctx = replace(ctx, as_json=ctx.as_json or as_json)
    spec, checks = run_preflight(ctx.settings(), campaign)
    ctx.emit([c.as_dict() for c in checks], lambda rows: print_checks(spec.campaign_id, rows))
    failed = [c.check for c in checks if c.status == FAIL]
    if failed:
        raise NeedsAttention(f"preflight of campaign {spec.campaign_id!r}: {len(failed)} check(s) FAIL "
                             f"({', '.join(dict.fromkeys(failed))})")


def print_checks(campaign_id: str, rows: list[dict], err: bool = False) -> None:
    """The table: one line per check (status, name, detail), and the fix under each one that is not a PASS."""
    counts = {s: sum(r["status"] == s for r in rows) for s in MARKS}
    click.echo(f"preflight of campaign {campaign_id}: {counts['PASS']} pass, {counts['WARN']} warn, "
               f"{counts['FAIL']} fail", err=err)
    width = max((len(r["check"]) for r in rows), default=0)
    for r in rows:
        click.echo(f"  {MARKS[r['status']]}  {r['check']:<{width}}  {r['detail']}", err=err)
        if r["fix"] and r["status"] != "PASS":
            click.echo(f"        {'':<{width}}  fix: {r['fix']}", err=err)


def print_warnings(rows: list[dict]) -> None:
    """Before a send's summary: the checks that warned (a FAIL never gets this far)."""
    for r in rows:
        if r["status"] != "PASS":
            click.echo(f"preflight {r['status']}: {r['check']}: {r['detail']}" + (f" (fix: {r['fix']})" if r["fix"] else ""))
