"""`mailflow ab`: decide a campaign's A/B test now and send its remainder with the winner."""

from __future__ import annotations

from dataclasses import replace

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.output import STOPPED, send_line
from mailflow.cli.sending import actor, sending

OUTCOMES = {"winner": "winner {winner}", "fallback_leader": "no clear winner; fallback: the leader, {winner}",
            "fallback_control": "no clear winner; fallback: the control, {winner}",
            "wait": "no clear winner; fallback: wait", "too_few": "too few delivered for a verdict; fallback: wait"}


@click.group()
def ab() -> None:
    """A/B tests: decide the winner and send the held-back remainder with it."""


@ab.command("decide")
@click.argument("campaign")
@click.option("--dry-run", is_flag=True, help="Decide and print, but store nothing and send nothing (new logs are still loaded).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as the global --json does).")
@pass_ctx
def ab_decide(ctx: Context, campaign: str, dry_run: bool, as_json: bool) -> None:
    """Load new events, decide CAMPAIGN's A/B test now (even before its wait ends), store the decision
    and send the remainder with the winner; a decision already made stands."""
    from mailflow.errors import MailflowError
    from mailflow.tasks.ab.attempt import ab_spec
    from mailflow.tasks.files.lifecycle import CANCELLED, state_of

    ctx = replace(ctx, as_json=ctx.as_json or as_json)
    home = ctx.settings().home
    ab_spec(home, campaign)  # unplanned, or no A/B test: said before Prefect starts
    if state_of(home, campaign) == CANCELLED:
        raise MailflowError(f"campaign {campaign!r} is cancelled; its A/B test is not decided")
    sending(ctx)  # the remainder may be sent: Ctrl-C stops it cleanly, `mailflow ab decide` again finishes it
    from mailflow.flows.pick_ab_winner import pick_ab_winner

    result = pick_ab_winner(campaign, ctx.config, ctx.overrides, dry_run=dry_run, by=actor("ab decide"))
    ctx.emit(result["decisions"][0], print_decision)


def print_decision(d: dict) -> None:
    cid = d["campaign_id"]
    when = "" if d.get("attempt") is None else f" (attempt {d['attempt']}, {d['decided_at']:%Y-%m-%dT%H:%MZ})"
    head = "already decided" if d["already_decided"] else ("dry run, not stored" if not d["stored"] else "decided")
    click.echo(f"campaign {cid}: A/B test {head}{when}: {OUTCOMES[d['outcome']].format(winner=d['winner'])}")
    click.echo(f"  metric {d['metric']} over human events; {d['method']} at confidence {d['confidence']:g}; "
               f"at least {d['min_per_variant']} delivered per variant")
    for v in d["variants"]:
        click.echo(f"  {v['variant']}: {v['successes']} of {v['trials']} = {v['rate']:.2%} "
                   f"[{v['ci_low']:.2%}, {v['ci_high']:.2%}] ({v['delivered']} delivered), "
                   f"P(best) {d['probability_best'].get(v['variant'], 0):.3f}")
    if d["p_value"] is not None:
        click.echo(f"  p = {d['p_value']:.4g} (the leader {d['leader']} against the weakest other variant)")
    click.echo(f"  {d['reason']}")
    h = d.get("holdout")
    if h:
        from mailflow.tasks.ab.lift import lift_line

        click.echo(f"  {lift_line(h)}")
    click.echo("  " + remainder_line(d))


def remainder_line(d: dict) -> str:
    """What happened to the held-back recipients."""
    n, cid = d["remainder_recipients"], d["campaign_id"]
    if not n:
        return "remainder: none (the test and holdout take the whole audience)"
    if "sent" in d and d["sent"].get("stopped"):
        return f"remainder: {n} recipients released to {d['winner']}; {send_line(d['sent'])}; {STOPPED[d['sent']['stopped']]} while sending"
    if "sent" in d:
        return f"remainder: {n} recipients released to {d['winner']}; {send_line(d['sent'])}; campaign {d['sent'].get('state')}"
    if d.get("remainder_sent"):
        return f"remainder: {n} recipients already sent with {d['winner']}; nothing to do"
    if not d["final"]:
        return f"remainder: {n} recipients still held"
    if not d["stored"]:
        return f"remainder: {n} recipients would be sent with {d['winner']}"
    return (f"remainder: {n} recipients released to {d['winner']}; campaign {d['state']}: "
            f"`mailflow campaigns resume {cid}` sends them")
