"""Targeting: a campaign's lists, included and excluded segments or lists and its `where`, as one set of ids."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import connect, inputs
from mailflow.tasks.plan.condition import PARAMETERS, Condition, matching, require_boolean
from mailflow.tasks.plan.segment_files import Library

DEFAULT_SINCE = timedelta(days=90)
WHERE = ":where"  # the campaign's own condition among segment_members (no segment name has a colon)
_DURATION = re.compile(r"(\d{1,6})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Targeting:
    """What a campaign targets, every name resolved and every condition checked and expanded."""
    lists: tuple[str, ...]
    include_lists: tuple[str, ...]
    include_segments: tuple[str, ...]
    exclude_lists: tuple[str, ...]
    exclude_segments: tuple[str, ...]
    sets: tuple[tuple[str, str, Condition], ...]  # (key in segment_members, field, condition) to compute
    checks: tuple[tuple[str, Condition], ...]  # (file, condition) of every segment involved, innermost first
    params: dict[str, Any]


def target_audience(con: duckdb.DuckDBPyConnection, *, lists: Sequence[str], include: Sequence[str],
                    exclude: Sequence[str], where: str | None, params: Mapping[str, Any], campaign_id: str,
                    segment_dirs: Sequence[Path], origin: str = "campaign") -> int:
    """Fill the TEMP TABLE campaign_target(subscriber_id) with the matched audience, before statuses and
    suppressions: (in any of `lists`) AND (in any of `include`) AND NOT (in any of `exclude`) AND `where`;
    return its size. Writes nothing to the warehouse; every bad segment fails here, naming its file."""
    targeting = validate_targeting(lists=lists, include=include, exclude=exclude, where=where, params=params,
                                   campaign_id=campaign_id, segment_dirs=segment_dirs,
                                   list_names=list_names(con), origin=origin)
    compute_sets(con, targeting)
    excludes = {"exclude_lists": list(targeting.exclude_lists), "exclude_segments": list(targeting.exclude_segments)}
    record_excluded = any(excludes.values())
    con.execute(q("stage_campaign_target"), {
        "lists": list(targeting.lists), "include_lists": list(targeting.include_lists),
        "include_segments": list(targeting.include_segments), **excludes,
        "has_where": any(k == WHERE for k, _, _ in targeting.sets), "keep_excluded": record_excluded,
    })
    if record_excluded:  # who segment.exclude took out, with the name that did it (campaign_exclusions)
        con.execute(q("stage_segment_excluded"), excludes)
        con.execute(q("drop_excluded_from_target"))
    return con.execute(q("target_size")).fetchall()[0][0]


def validate_targeting(*, include: Sequence[str], exclude: Sequence[str], where: str | None, params: Mapping[str, Any],
                       campaign_id: str | None, segment_dirs: Sequence[Path], list_names: Collection[str],
                       lists: Sequence[str] = (), origin: str = "campaign") -> Targeting:
    """Everything checkable without running a condition: names resolve to one segment or list,
    segment files parse as one condition over the allowed tables, no include cycle, parameters parse."""
    library = Library(segment_dirs)
    values = parse_params(params, _field(origin, "params"), campaign_id=campaign_id)
    # A misspelt list would plan nobody without a word; with no list at all yet (nothing ingested),
    # the plan's empty-audience warning says why instead.
    unknown = [name for name in lists if list_names and name not in list_names]
    if unknown:
        raise MailflowError(f"{_field(origin, 'lists')}: no list named {unknown[0]!r} (lists: {', '.join(sorted(list_names))})")
    chosen: dict[str, dict[str, list[str]]] = {}
    sets: list[tuple[str, str, Condition]] = []
    for key, names in (("include", include), ("exclude", exclude)):
        field = _field(origin, f"segment.{key}")
        chosen[key] = {"list": [], "segment": []}
        for written in names:
            kind, name = _resolve(written, field, library, list_names)
            chosen[key][kind].append(name)
            if kind == "segment" and name not in {k for k, _, _ in sets}:
                sets.append((name, str(library.find(name)), library.expanded(name, field)))
    if where is not None and where.strip():
        sets.append((WHERE, _field(origin, "where"), library.expand(where, _field(origin, "where"))))
    checks = tuple(library.checked())
    for field, condition in [*checks, *((f, c) for k, f, c in sets if k == WHERE)]:
        missing = sorted(condition.parameters - {k for k, v in values.items() if v is not None})
        if missing:
            raise MailflowError(f"{field}: uses ${missing[0]}, and no {missing[0]} was given (params: or --param)")
    return Targeting(tuple(lists), tuple(chosen["include"]["list"]), tuple(chosen["include"]["segment"]),
                     tuple(chosen["exclude"]["list"]), tuple(chosen["exclude"]["segment"]), tuple(sets), checks, values)


def compute_sets(con: duckdb.DuckDBPyConnection, targeting: Targeting) -> None:
    """Each needed segment (and the `where`) computed alone, by its checked condition, into the TEMP
    TABLE segment_members; every segment file is bound first, innermost first, so an error names
    the file that has it."""
    for field, condition in targeting.checks:
        require_boolean(con, condition, field, targeting.params)
    con.execute(q("stage_segment_members"))
    for key, field, condition in targeting.sets:
        if key == WHERE:
            require_boolean(con, condition, field, targeting.params)
        try:
            with inputs(con, segment_condition=matching(con, condition, field, targeting.params)):
                con.execute(q("insert_segment_members"), {"segment": key})
        except duckdb.Error as exc:  # a conversion that fails on some row, e.g. a JSON attribute cast
            raise MailflowError(f"{field}: {str(exc).strip().splitlines()[0]}") from None


def segment_members(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any],
                    segment_dirs: Sequence[Path]) -> tuple[tuple[int, int], list[tuple[int, str]]]:
    """A segment's size now (any status, and active) and its first ten members (id, email): `segments count`."""
    if Library(segment_dirs).find(name) is None:
        raise MailflowError(f"no segment named {name!r} (see `mailflow segments list`)")
    targeting = validate_targeting(include=[f"segment:{name}"], exclude=[], where=None, params=params, campaign_id=None,
                                   segment_dirs=segment_dirs, list_names=(), origin="segments count")
    compute_sets(con, targeting)
    size = con.execute(q("segment_size"), {"segment": name}).fetchall()[0]
    return size, con.execute(q("segment_sample"), {"segment": name}).fetchall()


def list_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute(q("list_names")).fetchall()}


def known_lists(warehouse: Path) -> set[str]:
    """The list names in a warehouse, read-only, for validate_targeting before Prefect starts (none yet: empty)."""
    if not warehouse.exists():
        return set()
    with connect(warehouse, locked=True) as con:
        return list_names(con)


def parse_params(params: Mapping[str, Any], field: str = "params", *, campaign_id: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """The values of $since (default: 90 days ago) and $campaign (default: the planned campaign's id).

    `since` is an ISO date or time (UTC unless it says otherwise) or a duration back from now
    (`12h`, `90d`, `8w`); `campaign` a campaign's name or id.
    """
    if not isinstance(params, Mapping):
        raise MailflowError(f"{field}: must map since and/or campaign to values")
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise MailflowError(f"{field}: unknown parameter {unknown[0]!r} (segments take since and campaign)")
    now = now or datetime.now(UTC)
    since = now - DEFAULT_SINCE if params.get("since") is None else _since(params["since"], field, now)
    campaign = campaign_id if params.get("campaign") is None else _campaign(params["campaign"], field)
    return {"since": since, "campaign": campaign}


def _resolve(written: str, field: str, library: Library, list_names: Collection[str]) -> tuple[str, str]:
    """("segment" | "list", name) for a name as a campaign writes it: NAME, segment:NAME or list:NAME."""
    kind, _, name = written.partition(":") if written.startswith(("segment:", "list:")) else ("", "", written)
    is_segment, is_list = library.find(name) is not None, name in list_names
    if kind == "segment" and not is_segment:
        library.segment(name, field)  # raises, naming where it looked
    if kind == "list" and not is_list:
        raise MailflowError(f"{field}: no list named {name!r}")
    if not kind and is_segment and is_list:
        raise MailflowError(f"{field}: {name!r} is both a segment and a list; write segment:{name} or list:{name}")
    if not kind and not (is_segment or is_list):
        raise MailflowError(f"{field}: {name!r} is neither a segment nor a list")
    return kind or ("segment" if is_segment else "list"), name


def _since(value: Any, field: str, now: datetime) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and (duration := _DURATION.fullmatch(value.strip())):
        return now - timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise MailflowError(f"{field}: since {value!r} is neither an ISO date/time nor a duration like 90d, 12h or 8w") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _campaign(value: Any, field: str) -> str:
    from mailflow.tasks.plan.campaign import campaign_id_for  # here: the campaign file's parser may import this module

    campaign = campaign_id_for(str(value))
    if not campaign:
        raise MailflowError(f"{field}: campaign {value!r} is not a campaign name or id")
    return campaign


def _field(origin: str, name: str) -> str:
    return f"{origin} field {name!r}"
