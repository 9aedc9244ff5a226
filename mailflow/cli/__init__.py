"""The `mailflow` command: runs the stages as Prefect flows and prints a short summary."""

from __future__ import annotations

import glob
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

import click

from mailflow import interrupt
from mailflow.cli import prefect_env
from mailflow.cli.ab import ab
from mailflow.cli.bounces import bounces
from mailflow.cli.campaigns import campaigns
from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.deploy import deploy
from mailflow.cli.lists import lists
from mailflow.cli.output import print_aggregate, print_demo, print_due, print_ingest, print_plan, print_retry, print_rows
from mailflow.cli.preflight import preflight
from mailflow.cli.reports import report
from mailflow.cli.segments import segments
from mailflow.cli.sending import actor, send_one, sending, workers_server
from mailflow.cli.server import server
from mailflow.cli.studio import studio
from mailflow.cli.track import track
from mailflow.errors import Interrupted, MailflowError, NeedsAttention
from mailflow.home import private_umask


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Where the warehouse and logs live (default ./data).")
@click.option("--config", type=click.Path(dir_okay=False), help="Settings file (default mailflow.toml if present).")
@click.option("--templates", type=click.Path(file_okay=False),
              help="Your campaign templates, looked up before the built-in ones (default ./templates).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a human summary.")
@click.option("--debug", is_flag=True, help="Show tracebacks and Prefect's logs.")
@click.version_option(package_name="mailflow")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config: str | None, templates: str | None, as_json: bool,
        debug: bool) -> None:
    """mailflow: bulk email delivery as Prefect data pipelines over DuckDB."""
    private_umask()  # the home holds subscriber data: nothing this command (or its workers) writes is for others
    prefect_env.prepare(verbose=debug)
    overrides = ({"home": home} if home else {}) | ({"templates_dir": str(Path(templates).absolute())} if templates else {})
    ctx.obj = Context(config, overrides, as_json, debug)


@cli.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create or migrate the warehouse and the Prefect send-rate limit (idempotent)."""
    from mailflow.tasks.core.warehouse import connect, migrate

    settings = ctx.settings()
    with connect(settings.warehouse) as con:
        applied = migrate(con)
    rate = "global send rate: off (send.rate = 0)"
    if settings.send.rate > 0:  # only then is Prefect needed (its start-up costs seconds)
        prefect_env.use_server(settings.home)  # the limit lives on the server the sends will use
        from mailflow.tasks.deliver.tasks import ensure_rate_limit

        rate = ensure_rate_limit(settings)
    ctx.emit({"warehouse": str(settings.warehouse), "applied": applied, "rate_limit": rate},
             lambda d: click.echo(f"warehouse ready: {d['warehouse']}\n{d['rate_limit']}"))


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--list", "list_name", help="Add the subscribers to this list.")
@click.option("--encoding", help="The files' text encoding when not UTF-8 (cp1252, latin-1, shift_jis ...).")
@click.option("--delimiter", help="CSV field delimiter (default: sniffed from the header).")
@click.option("--map", "column_map", multiple=True, metavar="SOURCE=TARGET", help="Rename a column, e.g. --map 'E-mail=email'.")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False), help="YAML file with columns: and types: sections.")
@click.option("--allow-resubscribe", is_flag=True, help="Let rows with newer explicit consent re-activate unsubscribed addresses.")
@click.option("--check-mx", is_flag=True, help="Quarantine addresses whose domain has no mail exchanger (DNS).")
@click.option("--reject-role-accounts", is_flag=True, help="Quarantine info@, support@ and other shared mailboxes.")
@click.option("--reject-disposable", is_flag=True, help="Quarantine addresses at throwaway-mail domains.")
@pass_ctx
def ingest(ctx: Context, paths: tuple[str, ...], list_name: str | None, encoding: str | None, delimiter: str | None,
           column_map: tuple[str, ...], mapping_file: str | None, allow_resubscribe: bool, check_mx: bool,
           reject_role_accounts: bool, reject_disposable: bool) -> None:
    """Ingest subscribers (CSV, TSV, Parquet, JSON, NDJSON; gzip too); bad rows go to the quarantine table."""
    home = ctx.settings().home  # bad settings and a home open to others are dealt with before Prefect starts
    files = expand_paths(paths)
    from mailflow.tasks.ingest.ingest import IngestOptions, probe
    from mailflow.tasks.ingest.normalise import load_mapping
    from mailflow.tasks.ingest.screen import ScreenOptions

    mapping = load_mapping(Path(mapping_file) if mapping_file else None, column_map)
    for path in files:  # fail fast on an unreadable file, before Prefect starts
        probe(Path(path), IngestOptions(encoding=encoding, delimiter=delimiter, screen=ScreenOptions(mapping)))
    prefect_env.use_server(home)
    from mailflow.flows.ingest import ingest as flow

    results = flow(files, list_name=list_name, encoding=encoding, delimiter=delimiter, column_map=list(column_map),
                   mapping_file=mapping_file, allow_resubscribe=allow_resubscribe, check_mx=check_mx,
                   reject_role_accounts=reject_role_accounts, reject_disposable=reject_disposable,
                   config=ctx.config, overrides=ctx.overrides)
    ctx.emit(results, print_ingest)


def expand_paths(patterns: tuple[str, ...]) -> list[str]:
    """Paths as given, and glob patterns (quoted so the shell left them) expanded."""
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise MailflowError(f"{pattern}: no file matches")
        for path in matches:
            if not Path(path).is_file():
                raise MailflowError(f"{path}: no such file")
        files += matches
    return files


@cli.command()
@click.argument("table", type=click.Choice(["subscribers", "quarantine"]))
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True, help="File to write (.csv or .parquet).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), help="Default: from the file name.")
@pass_ctx
def export(ctx: Context, table: str, output: str, fmt: str | None) -> None:
    """Export subscribers or the quarantine as formula-safe CSV or as Parquet."""
    from mailflow.tasks.aggregate.export import export_table
    from mailflow.tasks.core.warehouse import connect

    with connect(ctx.settings().warehouse, locked=True) as con:
        rows = export_table(con, table, Path(output), fmt)
    ctx.emit({"table": table, "rows": rows, "output": output}, lambda d: click.echo(f"wrote {rows} rows to {output}"))


@cli.command()
@click.argument("campaign_file", type=click.Path())
@pass_ctx
def plan(ctx: Context, campaign_file: str) -> None:
    """Register (or re-plan) a campaign: freeze its audience, split A/B, write its chunks."""
    from mailflow.tasks.plan.campaign import load_campaign

    spec = load_campaign(Path(campaign_file))  # fail fast, before Prefect starts
    settings = ctx.settings()
    if spec.transport != "mx":
        settings.pool(spec.transport)  # a transport the settings do not know, named before planning
    from mailflow.tasks.plan.segment_files import segment_dirs
    from mailflow.tasks.plan.segments import known_lists, validate_targeting

    # segment and list names, segment files, include cycles and parameters: before Prefect starts
    validate_targeting(include=spec.segment_include, exclude=spec.segment_exclude, where=spec.where, params=spec.params,
                       campaign_id=spec.campaign_id, segment_dirs=segment_dirs(settings.segments_dir),
                       list_names=known_lists(settings.warehouse), lists=spec.lists, origin=f"{campaign_file}:")
    prefect_env.use_server(settings.home)
    from mailflow.flows.plan_campaign import plan_campaign

    result = plan_campaign(campaign_file, ctx.config, ctx.overrides, actor("plan"))
    from mailflow.cli.estimate import print_estimate
    from mailflow.tasks.aggregate.overview import chunk_schedule
    from mailflow.tasks.send.estimate import send_estimate

    result["schedule"] = chunk_schedule(settings.home, result["campaign_id"], datetime.now(UTC))
    result |= send_estimate(settings, result["campaign_id"], datetime.now(UTC))
    ctx.emit(result, lambda d: (print_plan(d), print_estimate(d)))
    for warning in result["warnings"]:
        click.echo(f"mailflow: warning: {warning}", err=True)


@cli.command()
@click.argument("campaign", required=False)
@click.option("--due", is_flag=True, help="Send the due chunks of every campaign that is not paused or cancelled.")
@click.option("--dry-run", "dry_run", type=int, metavar="N", help="Render N sample messages to .eml files; send nothing.")
@click.option("--no-progress", is_flag=True, help="Draw no progress bar (drawn only when stderr is a terminal, never with --json).")
@click.option("--skip-preflight", is_flag=True, help="Send without the deliverability checks of `mailflow preflight` first.")
@click.option("--via-workers", is_flag=True,
              help="Each chunk a run of the send-chunk deployment, for the Prefect workers of its pool (PREFECT_API_URL).")
@pass_ctx
def send(ctx: Context, campaign: str | None, due: bool, dry_run: int | None, no_progress: bool, skip_preflight: bool,
         via_workers: bool) -> None:
    """Send a planned campaign's due chunks (run again to resume an interrupted send)."""
    if due == bool(campaign):
        raise click.UsageError("give a CAMPAIGN or --due, not both")
    if via_workers and dry_run is not None:
        raise click.UsageError("--dry-run renders here: give it without --via-workers")
    if via_workers:
        workers_server(ctx.settings().home)
    if due:
        sending(ctx)  # loads the settings first: bad ones and a home open to others are dealt with before Prefect starts
        from mailflow.flows.send_due import send_due

        ctx.emit(send_due(ctx.config, ctx.overrides, by=actor("send --due"), preflight=not skip_preflight, distribute=via_workers),
                 print_due)
        return
    if dry_run is not None:
        from mailflow.tasks.send.dryrun import write_samples

        paths = write_samples(ctx.settings(), campaign, dry_run)
        ctx.emit([str(p) for p in paths], lambda d: click.echo(f"rendered {len(d)} samples into {Path(d[0]).parent if d else '-'}"))
        return
    send_one(ctx, campaign, no_progress, "send", preflight=not skip_preflight, distribute=via_workers)


@cli.command()
@click.option("--campaign", help="Only this campaign (default: every campaign with deferred recipients).")
@pass_ctx
def retry(ctx: Context, campaign: str | None) -> None:
    """Resend deferred recipients whose back-off has elapsed; give up on those deferred too long."""
    sending(ctx)  # loads the settings first: bad ones and a home open to others are dealt with before Prefect starts
    from mailflow.flows.retry_deferred import retry_deferred

    ctx.emit(retry_deferred(campaign, ctx.config, ctx.overrides, by=actor("retry")), print_retry)


@cli.command()
@pass_ctx
def aggregate(ctx: Context) -> None:
    """Load new send ledgers, suppression logs and event logs into the warehouse; apply suppression rules."""
    home = ctx.settings().home  # bad settings and a home open to others are dealt with before Prefect starts
    prefect_env.use_server(home)
    from mailflow.flows.aggregate_engagement import aggregate_engagement

    ctx.emit(aggregate_engagement(ctx.config, ctx.overrides), print_aggregate)


@cli.command()
@click.argument("query")
@pass_ctx
def sql(ctx: Context, query: str) -> None:
    """Read-only SQL on the warehouse, for analysts."""
    import duckdb

    from mailflow.tasks.core.warehouse import connect

    with connect(ctx.settings().warehouse, locked=True) as con:
        try:
            cursor = con.execute(query)
        except duckdb.Error as exc:
            raise MailflowError(f"sql: {str(exc).splitlines()[0]}") from None
        names = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if names else []
    ctx.emit([dict(zip(names, r)) for r in rows], lambda d: print_rows(names, rows))


@cli.command()
@pass_ctx
def demo(ctx: Context) -> None:
    """The whole loop on sample data with embedded defaults, ending in a report."""
    api = sending(ctx)  # loads the settings first: bad ones and a home open to others are dealt with before Prefect starts
    from mailflow.flows.demo import demo as flow

    result = flow(ctx.config, ctx.overrides)
    ctx.emit(result | {"prefect_ui": None if api.source == "temporary" else api.ui_url}, print_demo)


cli.add_command(report)
cli.add_command(lists)
cli.add_command(segments)
cli.add_command(campaigns)
cli.add_command(track)
cli.add_command(bounces)
cli.add_command(ab)
cli.add_command(studio)
cli.add_command(preflight)
cli.add_command(deploy)
cli.add_command(server)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        try:
            cli.main(args=argv, prog_name="mailflow", standalone_mode=False)
        except BaseException as exc:
            if interrupt.requested() and not isinstance(exc, Interrupted):
                # Whatever broke while a stop request wound the command down is no bug to report.
                raise Interrupted("stopped on request") from exc
            raise
    except Interrupted:
        if debug:
            traceback.print_exc()
        interrupt.say()
        return interrupt.EXIT_STATUS
    except click.exceptions.Abort:
        click.echo("mailflow: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return 2
    except MailflowError as exc:
        _fail(f"mailflow: {exc}", debug)
        return 2
    except NeedsAttention as exc:
        _fail(f"mailflow: {exc}", debug)
        return 1
    except Exception as exc:  # a bug or an outside failure: one line unless --debug
        _fail(f"mailflow: {type(exc).__name__}: {exc} (run with --debug for the traceback)", debug)
        return 1
    return 0


def _fail(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(" ".join(line.split()), err=True)

