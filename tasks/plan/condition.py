"""The one guard for user-written SQL conditions (a campaign's `where`, saved segments).

A condition is checked by structure, not by scanning its text: DuckDB's own parser turns
`SELECT subscriber_id FROM subscribers WHERE <condition>` into a syntax tree
(`json_serialize_sql`), and the tree must be exactly that one SELECT with one WHERE
expression, whose subqueries read only the warehouse tables in READABLE_TABLES, with no
table functions (file readers, `query`, `glob` ...), no CTEs, no parameters but `$since` and
`$campaign`, and no function that reads the database's configuration or state. Calls
`segment('name')` (a saved segment, tasks/plan/segment_files.py) are found in the same tree
and reported with their place in the text. The very text that was checked is then run as
its own query on a connection with external access off; the planner intersects its result
with every mandatory filter (lists, status, suppressions, rules) outside it, so no
condition can widen an audience.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q

# What a condition may read: the subscriber's data and the history segments are built from,
# with each subscriber's engagement figures (the mart refreshed by every aggregate).
READABLE_TABLES = frozenset({
    "subscribers", "lists", "list_memberships", "campaigns", "campaign_recipients", "deliveries",
    "events", "suppressions", "subscriber_engagement",
})
# Scalar functions that read the session's configuration or state, or change it.
REFUSED_FUNCTIONS = frozenset({"current_setting", "getvariable", "nextval", "currval", "setseed"})
# Table references other than tables, joins and subqueries (SHOW/SUMMARIZE, PIVOT ...).
_REFUSED_REFS = frozenset({"SHOW_REF", "PIVOT", "COLUMN_DATA"})
# Table functions with a harmless scalar form (unnest(list) in a select list).
_ALSO_SCALAR = frozenset({"unnest"})
# The only parameters a condition may use; their values come from the campaign (tasks/plan/segments.py).
PARAMETERS = frozenset({"since", "campaign"})
# A saved segment's name: its file's stem, and what `segment('...')` takes.
SEGMENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SELECT = "SELECT subscriber_id FROM subscribers WHERE "
_PROBE = "SELECT (\n{condition}\n) AS matches FROM subscribers"  # its lines: a trailing -- comment stays inside
_MAX_LENGTH = 20_000


@dataclass(frozen=True)
class SegmentCall:
    """One `segment('name')` in a condition: the name and its span in the condition's UTF-8 bytes."""
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Condition:
    """A checked condition: the query to run, the parameters it uses and the segments it calls."""
    text: str
    query: str
    parameters: frozenset[str]
    calls: tuple[SegmentCall, ...]


def check_condition(condition: str, field: str = "where", max_length: int = _MAX_LENGTH) -> Condition:
    """Check `condition` by its syntax tree; raises MailflowError naming `field` when it is
    anything but one boolean expression over the readable tables."""
    if len(condition) > max_length:
        raise MailflowError(f"{field}: longer than {max_length:,} characters")
    query = _SELECT + condition
    tree = _parse(query, field)
    _check_shape(tree, field)
    calls: list[SegmentCall] = []
    _check_nodes(tree["statements"][0]["node"]["where_clause"], field, calls, nested=False)
    offset = len(_SELECT.encode())
    spans = [SegmentCall(c.name, c.start - offset, c.end - offset) for c in calls]
    parameters = frozenset(p["key"] for p in tree["statements"][0].get("named_param_map") or [])
    return Condition(condition, query, parameters, tuple(sorted(spans, key=lambda c: c.start)))


def condition_query(condition: str, field: str = "where") -> str:
    """The query that selects the subscribers matching `condition`, after checking its tree."""
    return check_condition(condition, field).query


def matching(con: duckdb.DuckDBPyConnection, condition: str | Condition, field: str = "where",
             params: dict[str, object] | None = None) -> duckdb.DuckDBPyRelation:
    """The subscriber ids matching a checked condition, as a relation, with external access off.

    Binding errors (a misspelt column, a wrong type) surface here, naming the field.
    """
    checked = condition if isinstance(condition, Condition) else check_condition(condition, field)
    if checked.calls:
        raise MailflowError(f"{field}: segment({checked.calls[0].name!r}) must be expanded first (tasks/plan/segment_files.py)")
    missing = sorted(checked.parameters - set(params or {}))
    if missing:
        raise MailflowError(f"{field}: no value for ${missing[0]}")
    switch_off_external_access(con)
    try:
        return con.sql(checked.query, params={k: v for k, v in (params or {}).items() if k in checked.parameters})
    except duckdb.Error as exc:
        raise MailflowError(f"{field}: {_first_line(exc)}") from None


def require_boolean(con: duckdb.DuckDBPyConnection, checked: Condition, field: str,
                    params: dict[str, object] | None = None) -> None:
    """Refuse a condition that is no true/false value (`email`, `1`): WHERE would cast it, and fail
    only on some rows. Its type is read by binding it as a column, never by running it; the
    probe must parse to the very expression that was checked."""
    probe = _PROBE.format(condition=checked.text)
    tree = _parse(probe, field)
    node = tree["statements"][0]["node"] if len(tree.get("statements") or []) == 1 else {}
    expressions = node.get("select_list") or []
    checked_tree = _parse(checked.query, field)["statements"][0]["node"]["where_clause"]
    probe_shaped = (node.get("from_table", {}).get("table_name") == "subscribers" and node.get("where_clause") is None
                    and not node.get("modifiers") and len(expressions) == 1)
    if not probe_shaped or _unplaced(dict(expressions[0], alias="")) != _unplaced(checked_tree):
        raise MailflowError(f"{field}: must be a single condition on subscribers")
    switch_off_external_access(con)
    try:
        kind = str(con.sql(probe, params={k: v for k, v in (params or {}).items() if k in checked.parameters}).types[0])
    except duckdb.Error as exc:
        raise MailflowError(f"{field}: {_first_line(exc)}") from None
    if kind not in ("BOOLEAN", '"NULL"'):
        raise MailflowError(f"{field}: is not a true/false condition (it gives {kind})")


def _unplaced(node: Any) -> Any:
    """A syntax tree without its positions in the text, to compare two parses of one expression."""
    if isinstance(node, dict):
        return {k: _unplaced(v) for k, v in node.items() if k not in ("query_location", "query_location_length")}
    if isinstance(node, list):
        return [_unplaced(v) for v in node]
    return node


def switch_off_external_access(con: duckdb.DuckDBPyConnection) -> None:
    """Only ever switched off: the rest of this connection's step needs no files either.
    (An analyst's locked connection has it off already, and may not SET it.)"""
    if con.execute(q("external_access")).fetchall()[0][0]:
        con.execute("SET enable_external_access = false")


def _parse(query: str, field: str) -> dict[str, Any]:
    with _parser().cursor() as parser:  # a cursor per call: one per thread, and no database start-up each time
        try:
            tree = json.loads(parser.execute(q("parse_condition"), {"query": query}).fetchone()[0])
        except duckdb.Error as exc:  # e.g. text that is not valid Unicode
            raise MailflowError(f"{field}: {_first_line(exc)}") from None
    if tree.get("error"):
        message = tree.get("error_message", "not a condition")
        if "Only SELECT" in message:
            message = "not a single condition"
        raise MailflowError(f"{field}: {message}")
    return tree


def _check_shape(tree: dict[str, Any], field: str) -> None:
    """Exactly the one SELECT we wrote, with the condition as its WHERE and nothing else."""
    statements = tree.get("statements") or []
    node = statements[0]["node"] if len(statements) == 1 else {}
    shaped = (
        node.get("type") == "SELECT_NODE"
        and not node.get("modifiers") and not node["cte_map"]["map"]
        and [c.get("column_names") for c in node.get("select_list", [])] == [["subscriber_id"]]
        and node["from_table"].get("type") == "BASE_TABLE"
        and node["from_table"].get("table_name") == "subscribers"
        and not node["from_table"].get("alias") and not node["from_table"].get("schema_name")
        and node.get("where_clause") is not None
        and not node.get("group_expressions") and not node.get("group_sets")
        and node.get("having") is None and node.get("qualify") is None and node.get("sample") is None
        and {p["key"] for p in tree["statements"][0].get("named_param_map") or []} <= PARAMETERS
    )
    if not shaped:
        raise MailflowError(f"{field}: must be a single condition on subscribers (no ORDER BY, LIMIT, UNION, "
                            "parameters other than $since and $campaign ...)")


def _check_nodes(node: Any, field: str, calls: list[SegmentCall], nested: bool) -> None:
    """Walk every nested node: tables from the allow-list only, no table functions, no CTEs;
    collect the segment() calls (only outside subqueries, where `subscriber_id` is the subscriber's)."""
    if isinstance(node, list):
        for item in node:
            _check_nodes(item, field, calls, nested)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "FUNCTION" and _name(node) == "segment":
        calls.append(_segment_call(node, field, nested))
        return
    if kind == "TABLE_FUNCTION":
        raise MailflowError(f"{field}: table functions such as {_name(node.get('function'))!r} are not allowed")
    if kind in _REFUSED_REFS:
        raise MailflowError(f"{field}: {kind.lower().replace('_', ' ')} is not allowed in a condition")
    if kind == "BASE_TABLE":
        table = node.get("table_name", "")
        if node.get("catalog_name") or node.get("schema_name") not in ("", "main") or table not in READABLE_TABLES:
            raise MailflowError(f"{field}: may read only the tables {', '.join(sorted(READABLE_TABLES))} (not {table!r})")
    if kind not in (None, "SELECT_NODE", "SET_OPERATION_NODE") and kind.endswith("_NODE"):
        raise MailflowError(f"{field}: {kind.lower().replace('_node', '')} queries are not allowed")
    if (node.get("cte_map") or {}).get("map"):
        raise MailflowError(f"{field}: WITH (common table expressions) is not allowed; use a subquery")
    if "function_name" in node and _name(node) in _refused_functions():
        raise MailflowError(f"{field}: the function {_name(node)!r} is not allowed")
    nested = nested or kind == "SELECT_NODE"
    for value in node.values():
        if isinstance(value, dict | list):
            _check_nodes(value, field, calls, nested)


def _segment_call(node: dict[str, Any], field: str, nested: bool) -> SegmentCall:
    args = node.get("arguments") or node.get("children") or []
    arg = (args[0].get("expression", args[0]) if len(args) == 1 else {})
    literal = arg.get("literal") if isinstance(arg.get("literal"), dict) else {}
    name = literal.get("text") if arg.get("class") == "CONSTANT" and literal.get("kind") == "STRING" else None
    plain = not (node.get("schema") or node.get("catalog") or node.get("distinct") or node.get("filter")
                 or (node.get("order_bys") or {}).get("orders") or (len(args) == 1 and args[0].get("name")))
    if name is None or not plain:
        raise MailflowError(f"{field}: segment() takes one quoted segment name, like segment('engaged_90d')")
    if not SEGMENT_NAME.fullmatch(name):
        raise MailflowError(f"{field}: {name!r} is not a segment name (lower-case letters, digits and _)")
    if nested:
        raise MailflowError(f"{field}: segment({name!r}) may not stand inside a subquery")
    return SegmentCall(name, node["query_location"], node["query_location"] + node["query_location_length"])


def _name(function: Any) -> str:
    return str((function or {}).get("function_name", "")).lower()


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    """An empty in-memory database, only ever asked to parse."""
    return duckdb.connect()


@cache
def _refused_functions() -> frozenset[str]:
    """Functions that exist only as table functions (file readers, `query`, `glob` ...) or read state."""
    with duckdb.connect() as con:
        rows = con.execute(q("table_only_functions")).fetchall()
    return (frozenset(name.lower() for (name,) in rows) | REFUSED_FUNCTIONS) - _ALSO_SCALAR


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
