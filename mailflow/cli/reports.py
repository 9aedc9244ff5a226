"""`mailflow report`: a campaign's results as Markdown, one self-contained HTML page, or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.errors import MailflowError


@click.command()
@click.argument("campaign")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help="md for terminals; html: one self-contained page with charts, readable offline; json: the same data")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the report to this file instead of standard output")
@pass_ctx
def report(ctx: Context, campaign: str, fmt: str, output: Path | None) -> None:
    """The campaign's results: funnel, delivery, raw and human engagement per variant, bounces, providers, domains,
    links, opens and clicks over time, and the A/B decision."""
    from mailflow.tasks.aggregate.report import full_report

    settings = ctx.settings()
    data = full_report(settings.home, settings.warehouse, campaign)
    if fmt == "json" or (ctx.as_json and fmt == "md"):
        text = json.dumps(data, indent=2, default=str) + "\n"
    elif fmt == "html":  # the chart stack is imported for this format only
        from mailflow.tasks.aggregate.report_page import report_html

        text = report_html(data)
    else:
        from mailflow.tasks.aggregate.report_text import report_markdown

        text = report_markdown(data)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MailflowError(f"report: cannot write {output}: {exc.strerror}") from None
    click.echo(f"report written to {output}", err=True)
