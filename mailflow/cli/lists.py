"""`mailflow lists`: block and allow rules for addresses."""

from __future__ import annotations

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.output import print_rows
from mailflow.errors import MailflowError


@click.group()
def lists() -> None:
    """Block and allow rules for addresses: a@b.c, *@domain, re:REGEX."""


@lists.command("block")
@click.argument("pattern")
@pass_ctx
def lists_block(ctx: Context, pattern: str) -> None:
    """Block an address, a domain (*@domain) or a regex (re:...): quarantined at ingest, left out of plans."""
    _add_rule(ctx, pattern, "block")


@lists.command("allow")
@click.argument("pattern")
@pass_ctx
def lists_allow(ctx: Context, pattern: str) -> None:
    """Exempt an address, domain or regex from every block rule."""
    _add_rule(ctx, pattern, "allow")


@lists.command("remove")
@click.argument("pattern")
@pass_ctx
def lists_remove(ctx: Context, pattern: str) -> None:
    """Remove a block or allow rule."""
    from mailflow.tasks.core.rules import remove_rule
    from mailflow.tasks.core.warehouse import connect

    with connect(ctx.settings().warehouse) as con:
        if not remove_rule(con, pattern):
            raise MailflowError(f"no rule {pattern!r} (see `mailflow lists show`)")
    ctx.emit({"removed": pattern}, lambda d: click.echo(f"removed rule {pattern}"))


@lists.command("show")
@pass_ctx
def lists_show(ctx: Context) -> None:
    """The block and allow rules."""
    from mailflow.tasks.core.rules import load_rules
    from mailflow.tasks.core.warehouse import connect

    with connect(ctx.settings().warehouse) as con:
        rules = load_rules(con)
    ctx.emit([r.__dict__ for r in rules],
             lambda d: print_rows(["action", "pattern", "kind"], [(r.action, r.pattern, r.kind) for r in rules]))


def _add_rule(ctx: Context, pattern: str, action: str) -> None:
    from mailflow.tasks.core.rules import add_rule
    from mailflow.tasks.core.warehouse import connect

    with connect(ctx.settings().warehouse) as con:
        rule = add_rule(con, pattern, action)
    ctx.emit(rule.__dict__, lambda d: click.echo(f"{action} {rule.kind} rule: {rule.pattern}"))
