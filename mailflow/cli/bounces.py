"""`mailflow bounces`: classify bounce messages and map them to the sends they answer."""

from __future__ import annotations

import json
import sys

import click

from mailflow.cli import prefect_env
from mailflow.cli.context import Context, pass_ctx
from mailflow.errors import MailflowError


@click.group()
def bounces() -> None:
    """Bounce and complaint intake: DSNs, feedback reports and auto-replies that come back to the bounce domain."""


@bounces.command("classify")
@click.argument("paths", nargs=-1, required=True)
@click.option("--record", is_flag=True,
              help="Also write bounce events to HOME/events and suppress hard bounces and complaints.")
@pass_ctx
def bounces_classify(ctx: Context, paths: tuple[str, ...], record: bool) -> None:
    """Print one JSON line per bounced recipient of each message (.eml files, folders of them, Maildir, mbox)."""
    from mailflow.tasks.bounces.intake import BounceRecorder, message_rows
    from mailflow.tasks.bounces.mapping import SendIndex
    from mailflow.tasks.bounces.sources import check_paths, read_messages
    from mailflow.tasks.compose.tokens import signer_from_settings

    checked = check_paths(list(paths))
    settings = ctx.settings()
    try:
        signer = signer_from_settings(settings.tracking)
    except MailflowError:
        if record:
            raise
        signer = None  # without the secret no token is believed; recipients still map through the ledgers
    index = SendIndex(settings.home, signer)
    recorder = BounceRecorder(settings.home) if record else None
    messages = unmapped = 0
    try:
        for source, raw in read_messages(checked):
            rows = message_rows(raw, source, index)
            messages += 1
            unmapped += sum(1 for row in rows if row.get("unmapped"))
            for row in rows:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            if recorder:
                recorder.record(raw, rows)
    finally:
        if recorder:
            recorder.close()
    recorded = f"; recorded {dict(recorder.counts)}" if recorder else ""
    click.echo(f"{messages} message(s), {unmapped} bounce(s) unmapped{recorded}", err=True)


@bounces.command("fetch")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (as the global --json does).")
@pass_ctx
def bounces_fetch(ctx: Context, as_json: bool) -> None:
    """Read new mail from the bounce mailboxes ([bounces] maildir, [bounces.imap] url) once each: record bounce,
    complaint and unsubscribe events and suppressions, then move the mail to the processed folder."""
    from mailflow.tasks.bounces.fetch import configured_maildir, summary_line
    from mailflow.tasks.compose.tokens import signer_from_settings

    settings = ctx.settings()
    configured_maildir(settings)  # an unconfigured or missing mailbox is one line, before Prefect starts
    signer_from_settings(settings.tracking)
    prefect_env.use_server(settings.home)
    from mailflow.flows.process_bounces import process_bounces

    result = process_bounces(ctx.config, ctx.overrides)
    click.echo(json.dumps(result, indent=2) if as_json or ctx.as_json else summary_line(result))
