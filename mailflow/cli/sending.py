"""What the commands that send share: clean stops, the progress bar, and the send of one campaign."""

from __future__ import annotations

import getpass
import sys
from contextlib import nullcontext

from mailflow import interrupt
from mailflow.cli import prefect_env
from mailflow.cli.context import Context
from mailflow.cli.output import ProgressBar, print_send
from mailflow.cli.preflight import print_warnings
from mailflow.errors import MailflowError


def actor(command: str) -> str:
    """Who moved a campaign, for its lifecycle record: the command and the user running it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        user = "unknown"
    return f"mailflow {command} (user {user})"


def sending(ctx: Context) -> prefect_env.Api:
    """Before a command sends: Ctrl-C or SIGTERM then stops it cleanly (exit 130; running it again
    resumes), and a temporary Prefect server it starts is not stopped by the same Ctrl-C."""
    settings = ctx.settings()
    interrupt.install(settings.send.interrupt_grace)
    return prefect_env.use_server(settings.home)


def send_progress(ctx: Context, campaign: str, no_progress: bool):
    """A progress bar on stderr that follows the campaign's ledger while the send flow runs."""
    if no_progress or ctx.as_json or ctx.debug or not sys.stderr.isatty():  # --debug: Prefect's logs share stderr
        return nullcontext()
    from mailflow.tasks.files.manifest import read_manifest
    from mailflow.tasks.files.tally import ledger_tally

    home = ctx.settings().home
    return ProgressBar(ledger_tally(home, campaign).poll, read_manifest(home, campaign)["audience_size"], sys.stderr)


def workers_server(home) -> str:
    """`--via-workers`: the Prefect server the workers poll — a configured PREFECT_API_URL or the home's
    server (`mailflow server start`); a temporary server of this command's own has no workers, and its
    chunk runs would wait for ever."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url or prefect_env.running_server_url(home)
    if not url:
        raise MailflowError("--via-workers needs the Prefect server the workers use: "
                            "set PREFECT_API_URL or run `mailflow server start`")
    return url


def send_one(ctx: Context, campaign: str, no_progress: bool, command: str, preflight: bool = False,
             distribute: bool = False) -> None:
    """Send a planned campaign's due chunks in the foreground; refused before Prefect starts when
    the campaign is unplanned, paused or cancelled. `preflight`: the deliverability checks run first."""
    from mailflow.tasks.files.lifecycle import CANCELLED, PAUSED, state_of
    from mailflow.tasks.send.chunk import load_plan
    from mailflow.tasks.send.schedule import refusal

    settings = ctx.settings()
    load_plan(settings, campaign)  # fail fast on an unplanned campaign
    state = state_of(settings.home, campaign)
    if state in (PAUSED, CANCELLED):
        raise refusal(campaign, state)
    from datetime import UTC, datetime

    from mailflow.cli.estimate import print_estimate
    from mailflow.flows.send_campaign import send_campaign
    from mailflow.tasks.send.estimate import send_estimate

    pace = send_estimate(settings, campaign, datetime.now(UTC))
    if not ctx.as_json:
        print_estimate(pace)  # before the send: how long it will take
    sending(ctx)
    with send_progress(ctx, campaign, no_progress):
        result = send_campaign(campaign, ctx.config, ctx.overrides, by=actor(command), preflight=preflight, distribute=distribute)
    ctx.emit(result | pace, lambda r: (print_warnings(r.get("preflight", [])), print_send(r)))
