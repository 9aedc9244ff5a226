"""`mailflow deploy`: register prefect.yaml's deployments, their work pool and the send-rate limit with a running Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

import mailflow
from mailflow.cli import prefect_env
from mailflow.cli.context import Context, pass_ctx
from mailflow.errors import MailflowError, NeedsAttention

CHECKOUT = Path(mailflow.__file__).resolve().parent.parent  # the folder holding prefect.yaml and flows/
NO_SERVER = "no Prefect server to deploy to: start one with `mailflow server start` (or set PREFECT_API_URL)"
DEPLOY_LIMIT = 600  # seconds for `prefect deploy --all`: it loads every flow (~2 s each here); a hung one is reported


@click.command()
@click.option("--project", type=click.Path(file_okay=False, path_type=Path),
              help="A mailflow checkout holding prefect.yaml and flows/ (default: the one this command runs from).")
@pass_ctx
def deploy(ctx: Context, project: Path | None) -> None:
    """Register the deployments of prefect.yaml, their process work pool and the send-rate limit with the running
    Prefect server (`mailflow server start`, or PREFECT_API_URL)."""
    settings = ctx.settings()
    project = (project or CHECKOUT).resolve()
    spec = read_deployments(project / "prefect.yaml")
    api_url = api_url_of(settings.home)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        pools = {name: ensure_process_pool(name, api_url) for name in sorted({d["pool"] for d in spec})}
        rate = send_rate_limit(settings)
        output = run_prefect_deploy(project, api_url, ctx.debug)
        registered = registered_deployments([d["name"] for d in spec])
    missing = [d["name"] for d in spec if d["name"] not in {r["name"] for r in registered}]
    if missing:
        raise NeedsAttention(f"prefect deploy did not register {', '.join(missing)}: {last_line(output)}")
    ctx.emit({"api_url": api_url, "project": str(project), "work_pools": pools, "rate_limit": rate,
              "deployments": registered}, print_deploy)


def read_deployments(path: Path) -> list[dict]:
    """[{name, pool}] of each deployment in prefect.yaml, in its order; a file that is missing or unreadable is named."""
    import yaml  # here: every other command starts without it

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MailflowError(f"{path}: {exc.strerror} (give --project, a mailflow checkout)") from None
    except yaml.YAMLError as exc:
        raise MailflowError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    deployments = spec.get("deployments") if isinstance(spec, dict) else None
    if not deployments or not all(isinstance(d, dict) and d.get("name") for d in deployments):
        raise MailflowError(f"{path}: no deployments: each entry of `deployments:` needs a name")
    return [{"name": d["name"], "pool": (d.get("work_pool") or {}).get("name") or "mailflow"} for d in deployments]


def api_url_of(home: Path) -> str:
    """A configured PREFECT_API_URL (environment or Prefect profile), else the home's own server; neither is bad usage."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url or prefect_env.running_server_url(home)
    if not url:
        raise MailflowError(NO_SERVER)
    return url


def ensure_process_pool(name: str, api_url: str) -> str:
    """Create the work pool as a process pool when it is missing; say which it was."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        with get_client(sync_client=True) as client:
            try:
                pool = client.read_work_pool(name)
                return f"exists ({pool.type})"
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=name, type=ProcessWorker.type,
                                                       base_job_template=ProcessWorker.get_default_base_job_template()))
                return "created (process)"
    except httpx.HTTPError as exc:
        raise MailflowError(f"cannot reach the Prefect API at {api_url} ({type(exc).__name__}): {NO_SERVER.partition(': ')[2]}") from None


def send_rate_limit(settings) -> str:
    if settings.send.rate <= 0:
        return "global send rate: off (send.rate = 0)"
    from mailflow.tasks.deliver.tasks import ensure_rate_limit

    return ensure_rate_limit(settings)


def run_prefect_deploy(project: Path, api_url: str, debug: bool) -> str:
    """`prefect --no-prompt deploy --all` on the project's prefect.yaml, as a user would run it from the checkout."""
    env = os.environ | {"PREFECT_API_URL": api_url, "MAILFLOW_REPO": str(project)}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(project / "prefect.yaml")]
    try:
        done = subprocess.run(command, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=DEPLOY_LIMIT)
    except subprocess.TimeoutExpired:
        raise NeedsAttention(f"prefect deploy --all did not finish within {DEPLOY_LIMIT} s") from None
    output = done.stdout + done.stderr
    if debug:
        click.echo(output, err=True)
    if done.returncode:
        raise NeedsAttention(f"prefect deploy --all failed (exit {done.returncode}): {last_line(output)}")
    return output


def last_line(output: str) -> str:
    lines = [line.strip(" │╭╰─╮╯") for line in output.splitlines()]
    return next((line for line in reversed(lines) if line), "no output")


def registered_deployments(names: list[str]) -> list[dict]:
    """What the server now holds for these deployment names, in their order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)))
        flows = {f.id: f.name for f in client.read_flows()} if found else {}
    by_name = {d.name: d for d in found}
    return [{"name": d.name, "flow": flows.get(d.flow_id, "?"), "work_pool": d.work_pool_name,
             "schedule": schedule_words(d.schedules), "parameters": d.parameters,
             "concurrency_limit": d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
             "id": str(d.id)} for d in (by_name[n] for n in names if n in by_name)]


def schedule_words(schedules) -> str:
    words = []
    for s in schedules:
        interval = getattr(s.schedule, "interval", None)
        words.append(f"every {interval.total_seconds() / 60:g} min" if interval else str(s.schedule))
    return ", ".join(words) or "on demand"


def print_deploy(d: dict) -> None:
    click.echo(f"registered {len(d['deployments'])} deployments with {d['api_url']}:")
    width = max(len(f"{r['flow']}/{r['name']}") for r in d["deployments"])
    for r in d["deployments"]:
        click.echo(f"  {r['flow'] + '/' + r['name']:<{width}}  {r['schedule']:<14}  pool {r['work_pool']}")
    for name, state in d["work_pools"].items():
        click.echo(f"work pool {name}: {state}")
    click.echo(d["rate_limit"])
    for name in d["work_pools"]:
        click.echo(f"run them: cd {d['project']} && prefect worker start --pool {name}   (umask 077, MAILFLOW_* settings)")
