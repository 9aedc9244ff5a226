"""`mailflow segments`: the saved segments, their live sizes and SQL (read-only; no Prefect)."""

from __future__ import annotations

import click

from mailflow.cli.context import Context, pass_ctx
from mailflow.cli.output import print_rows
from mailflow.errors import MailflowError


@click.group()
def segments() -> None:
    """Saved segments: sql/segments/NAME.sql in the project, then the built-in ones."""


@segments.command("list")
@pass_ctx
def segments_list(ctx: Context) -> None:
    """The segments: name, where it comes from, what it selects and the segments it includes."""
    from mailflow.tasks.plan.segment_files import all_segments, includes

    rows = []
    for segment in all_segments(_dirs(ctx)):
        try:
            included, description = ", ".join(includes(segment)), segment.description
        except MailflowError as exc:  # one broken file is shown, not the end of the listing
            included, description = "", f"INVALID: {exc}"
        rows.append({"name": segment.name, "source": segment.source, "description": description,
                     "includes": included, "path": str(segment.path)})
    ctx.emit(rows, lambda d: print_rows(["name", "source", "description", "includes"],
                                        [(r["name"], r["source"], r["description"], r["includes"]) for r in d]))


@segments.command("count")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A segment parameter: since=30d (or an ISO date), campaign=NAME.")
@pass_ctx
def segments_count(ctx: Context, name: str, params: tuple[str, ...]) -> None:
    """How many subscribers a segment holds now, and a sample of 10."""
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.plan.segments import parse_params, segment_members

    values = parse_params(_pairs(params), "--param")
    settings = ctx.settings()
    with connect(settings.warehouse, locked=True) as con:
        (size, active), sample = segment_members(con, name, values, _dirs(ctx, settings))
    data = {"segment": name, "size": size, "active": active, "params": {k: v for k, v in values.items() if v is not None},
            "sample": [{"subscriber_id": i, "email": e} for i, e in sample]}

    def human(d: dict) -> None:
        click.echo(f"segment {name}: {size} subscriber{'s' if size != 1 else ''} ({active} active)")
        if sample:
            print_rows(["subscriber_id", "email"], sample)
    ctx.emit(data, human)


@segments.command("show")
@click.argument("name")
@pass_ctx
def segments_show(ctx: Context, name: str) -> None:
    """A segment's file and SQL, and its condition with every included segment expanded."""
    from mailflow.tasks.plan.segment_files import Library, includes, load_segment

    library = Library(_dirs(ctx))
    path = library.find(name)
    if path is None:
        raise MailflowError(f"no segment named {name!r} (see `mailflow segments list`)")
    segment = load_segment(path)
    expanded = library.expanded(name, str(path)).text
    data = {"name": name, "source": segment.source, "path": str(path), "description": segment.description,
            "sql": segment.text, "includes": list(includes(segment)), "expanded": expanded}

    def human(d: dict) -> None:
        click.echo(f"segment {name} ({segment.source}): {path}\n\n{segment.text}")
        if d["includes"]:
            click.echo(f"\nincludes {', '.join(d['includes'])}; expanded:\n\n{expanded}")
    ctx.emit(data, human)


def _dirs(ctx: Context, settings=None):
    from mailflow.tasks.plan.segment_files import segment_dirs

    return segment_dirs((settings or ctx.settings()).segments_dir)


def _pairs(params: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in params:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MailflowError(f"--param {pair!r}: write KEY=VALUE, e.g. --param since=30d")
        out[key.strip()] = value.strip()
    return out
