"""`mailflow studio`: the web studio (its own process) and its users."""

from __future__ import annotations

import sys
import time

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.output import print_rows
from mailflow.cli.sending import actor
from mailflow.errors import MailflowError
from mailflow.tasks.studio.users import ROLES


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (put a TLS proxy in front for others).")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.pass_context
def studio(click_ctx: click.Context, host: str, port: int) -> None:
    """The web studio: templates and campaigns in the browser, behind a login with TOTP and roles."""
    if click_ctx.invoked_subcommand is not None:
        return
    from mailflow.tasks.studio.server import check, probe, serve

    settings = click_ctx.obj.settings()
    check(settings)
    probe(host, port)  # before saying it serves: a port in use is the one line the user sees
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"studio on http://{shown}:{port}; users in {settings.home / 'studio'}; Ctrl-C stops it", err=True)
    serve(settings, host, port)


@studio.group()
def users() -> None:
    """The studio's users: add, list, reset-totp, disable (HOME/studio/users.json; every change audited)."""


def _store(ctx: Context):
    from mailflow.tasks.studio.audit import AuditLog
    from mailflow.tasks.studio.users import UserStore

    home = ctx.settings().home
    return UserStore(home), AuditLog(home, writer="cli")


def _change(ctx: Context, name: str, action: str, said: str) -> None:
    from mailflow.tasks.studio.users import CHANGES, UserError

    change, audited = CHANGES[action]
    store, audit = _store(ctx)
    try:
        user = store.update(name, change)
    except UserError as exc:
        raise MailflowError(str(exc)) from None
    audit.write(actor(f"studio users {action}"), audited, user.name)
    ctx.emit({"name": user.name, "action": action}, lambda d: click.echo(said))


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="viewer reads; editor saves templates; "
              "sender also sends tests and acts on campaigns; admin also manages users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input (scripts).")
@pass_ctx
def users_add(ctx: Context, name: str, role: str, password_stdin: bool) -> None:
    """Add a user with a password; they enrol TOTP at their first login."""
    from mailflow.tasks.studio.credentials import hash_password, password_problem
    from mailflow.tasks.studio.users import User, UserError, check_name, check_role

    try:
        check_name(name)
        check_role(role)
    except UserError as exc:
        raise MailflowError(str(exc)) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    problem = password_problem(password)
    if problem:
        raise MailflowError(problem)
    store, audit = _store(ctx)
    try:
        store.add(User(name=name, role=role, password=hash_password(password)))
    except UserError as exc:
        raise MailflowError(str(exc)) from None
    audit.write(actor("studio users add"), "user.added", name, role=role)
    ctx.emit({"name": name, "role": role},
             lambda d: click.echo(f"user {name} added as {role}; they set up TOTP at their first login"))


@users.command("list")
@pass_ctx
def users_list(ctx: Context) -> None:
    """Every user: role, TOTP enrolled, recovery codes left, disabled or locked (no hashes, no secrets)."""
    store, _ = _store(ctx)
    rows = [u.public(time.time()) for u in store.all()]
    names = ["name", "role", "enrolled", "recovery_codes_left", "disabled", "locked", "created_at"]
    ctx.emit(rows, lambda d: print_rows(names, [tuple(r[n] for n in names) for r in d]))


@users.command("reset-totp")
@click.argument("name")
@pass_ctx
def users_reset_totp(ctx: Context, name: str) -> None:
    """Forget a user's TOTP and recovery codes and unlock them: they enrol again at their next login; their sessions end."""
    _change(ctx, name, "reset-totp", f"user {name}: TOTP reset and unlocked; they set it up again at their next login")


@users.command("disable")
@click.argument("name")
@pass_ctx
def users_disable(ctx: Context, name: str) -> None:
    """Disable a user: they cannot log in, and their sessions end at their next request."""
    _change(ctx, name, "disable", f"user {name} disabled")

