"""`mailflow campaigns`: the campaign lifecycle — list, show, pause, resume, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.output import GROUP_NOTES, print_rows, schedule_words
from mailflow.cli.sending import actor, send_one


@click.group()
def campaigns() -> None:
    """The campaign lifecycle: draft, planned, scheduled, sending, paused, sent, cancelled (or aborted)."""


@campaigns.command("list")
@pass_ctx
def campaigns_list(ctx: Context) -> None:
    """Every campaign with its state, audience and next chunk due (from files; no warehouse, no Prefect)."""
    from mailflow.tasks.aggregate.overview import campaign_list
    from mailflow.tasks.send.schedule import short_time

    rows = campaign_list(ctx.settings().home, datetime.now(UTC))
    names = ["campaign", "name", "state", "since", "audience", "chunks", "next_due"]
    ctx.emit(rows, lambda d: print_rows(names, [
        tuple(short_time(r[n]) if n in ("since", "next_due") and r[n] else r[n] for n in names) for r in d]))


@campaigns.command("show")
@click.argument("campaign")
@pass_ctx
def campaigns_show(ctx: Context, campaign: str) -> None:
    """State and history, the audience explained, variants, chunk schedule and send progress."""
    from mailflow.tasks.aggregate.overview import campaign_overview

    ctx.emit(campaign_overview(ctx.settings(), campaign, datetime.now(UTC)), print_overview)


@campaigns.command("pause")
@click.argument("campaign")
@click.option("--reason", default="", help="Why, for the campaign's history.")
@pass_ctx
def campaigns_pause(ctx: Context, campaign: str, reason: str) -> None:
    """Pause: running sends take no further recipient within seconds; the rest stay pending."""
    _hold(ctx, campaign, "paused", reason, f"paused; `mailflow campaigns resume {campaign}` continues it")


@campaigns.command("cancel")
@click.argument("campaign")
@click.option("--reason", default="", help="Why, for the campaign's history.")
@pass_ctx
def campaigns_cancel(ctx: Context, campaign: str, reason: str) -> None:
    """Cancel for good: running sends stop within seconds and the campaign is never sent again."""
    _hold(ctx, campaign, "cancelled", reason, "cancelled; it will not be sent")


@campaigns.command("resume")
@click.argument("campaign")
@click.option("--no-send", is_flag=True, help="Only mark it resumed (a scheduled `send --due` picks it up).")
@click.option("--no-progress", is_flag=True, help="Draw no progress bar.")
@pass_ctx
def campaigns_resume(ctx: Context, campaign: str, no_send: bool, no_progress: bool) -> None:
    """Resume a paused campaign and continue its send in the foreground, as `send` does."""
    from mailflow.errors import MailflowError
    from mailflow.tasks.files.control import clear_stop
    from mailflow.tasks.files.lifecycle import PAUSED, PLANNED, SENDING, current_state, record_transition

    home = ctx.settings().home
    state = current_state(home, campaign)
    if state is None or state.state != PAUSED:
        hint = f"; `mailflow send {campaign}` continues a send that stopped" if state and state.state == SENDING else ""
        raise MailflowError(f"campaign {campaign!r} is {state.state if state else 'not planned'}; "
                            f"only a paused campaign can be resumed{hint}")
    record_transition(home, campaign, state.resume_to or PLANNED, actor("campaigns resume"), "resumed",
                      allowed_from=(PAUSED,))
    clear_stop(home, campaign, holds=True)
    if no_send:
        ctx.emit({"campaign_id": campaign, "state": state.resume_to or PLANNED},
                 lambda d: click.echo(f"campaign {campaign}: resumed ({d['state']}); `mailflow send {campaign}` sends it"))
        return
    send_one(ctx, campaign, no_progress, "campaigns resume")


def _hold(ctx: Context, campaign: str, to_state: str, reason: str, says: str) -> None:
    """Record the move, then write the stop request every sender checks before each recipient."""
    from mailflow.tasks.files.control import CANCEL, PAUSE, request_stop
    from mailflow.tasks.files.lifecycle import record_transition

    home = ctx.settings().home
    by = actor(f"campaigns {'pause' if to_state == 'paused' else 'cancel'}")
    move = record_transition(home, campaign, to_state, by, reason)
    request_stop(home, campaign, reason or to_state, PAUSE if to_state == "paused" else CANCEL)
    ctx.emit({"campaign_id": campaign, "state": to_state, "from": move.from_state},
             lambda d: click.echo(f"campaign {campaign}: {says}"))


def ab_words(ab: dict) -> str:
    """The split and the winner rule in a line: 'test 30% (holdout 10%); winner by unique_clicks after 4h ...'."""
    hours = ab["wait_seconds"] / 3600
    holdout = f", holdout {ab['holdout_fraction']:.0%}" if ab["holdout_fraction"] else ""
    return (f"A/B test on {ab['test_fraction']:.0%} of the audience{holdout}; winner by "
            f"{ab['metric']} after {hours:g}h, at least {ab['min_per_variant']} per variant, confidence "
            f"{ab['confidence']:g}, else {ab['fallback']}")


def send_at_words(send_at: dict) -> str:
    """'2026-12-03T00:00Z' or '09:00 in each recipient's zone (default Asia/Tokyo)'."""
    from mailflow.tasks.send.schedule import short_time

    if send_at.get("at"):
        return short_time(send_at["at"])
    return f"{send_at['local_time']} in each recipient's zone (default {send_at['default_zone']})"


def print_overview(o: dict) -> None:
    from mailflow.tasks.send.schedule import short_time

    state = o["state"]
    click.echo(f"campaign {o['campaign_id']}" + (f" ({o['name']})" if o.get("name") else "")
               + f": {state['state']} since {short_time(state['since'])}")
    click.echo("history:")
    for t in o["history"]:
        click.echo(f"  {short_time(t['at'])}  {t['from_state'] or '-'} -> {t['to_state']}  by {t['by']}"
                   + (f": {t['reason']}" if t["reason"] else ""))
    if "audience" not in o:
        return
    a = o["audience"]
    if a["matched"] is not None:
        click.echo(f"audience: {a['matched']} matched, {sum(a['excluded'].values())} excluded, {a['planned']} planned")
        for rule, n in a["excluded"].items():
            click.echo(f"  excluded by {rule}: {n}")
    else:
        click.echo(f"audience: {a['planned']} planned (the warehouse could not be read: exclusions not shown)")
    click.echo("variants:" + (f" {ab_words(o['ab'])}" if o.get("ab") else ""))
    for v in o["variants"]:
        extra = ", ".join(f"{k}={send_at_words(val) if k == 'send_at' else val}" for k, val in v["overrides"].items())
        click.echo(f"  {v['variant']}: {v['recipients']} recipients" + (f" (weight {v['weight']:g})" if v["weight"] else "")
                   + (f", {GROUP_NOTES[v['variant']]}" if v["variant"] in GROUP_NOTES else "")
                   + (f"; {extra}" if extra else ""))
    if o.get("send_at"):
        click.echo(f"send at: {send_at_words(o['send_at'])}")
    t = o["outcomes"]
    click.echo(f"chunks: {schedule_words(o['schedule'])}")
    click.echo(f"sent: {t['delivered']} delivered, {t['deferred']} deferred, {t['bounced']} bounced, "
               f"{t['suppressed']} suppressed, {t['failed']} failed, {t['in_doubt']} in doubt; "
               f"{o['progress']['pending']} pending")
    if o["progress"]["deferred"]:
        click.echo(f"deferred: {o['progress']['deferred']}, next retry {short_time(o['progress']['next_retry'])}")
