"""The one guard for user-written SQL conditions (a campaign's `where`, saved segments).

A condition is checked by structure, not by scanning its text: DuckDB's own parser turns
`SELECT subscriber_id FROM subscribers WHERE <condition>` into a syntax tree
(`json_serialize_sql`), and the tree must be exactly that one SELECT with one WHERE
expression, whose subqueries read only the warehouse tables in READABLE_TABLES, with no
table functions (file readers, `query`, `glob` ...), no CTEs, no parameters and no
function that reads the database's configuration or state. The very text that was checked
is then run as its own query on a connection with external access off; the planner
intersects its result with every mandatory filter (lists, status, suppressions, rules)
outside it, so no condition can widen an audience.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q

# What a condition may read: the subscriber's data and the history segments are built from.
READABLE_TABLES = frozenset({
    "subscribers", "lists", "list_memberships", "campaigns", "campaign_recipients", "deliveries",
    "events", "suppressions",
})
# Scalar functions that read the session's configuration or state, or change it.
REFUSED_FUNCTIONS = frozenset({"current_setting", "getvariable", "nextval", "currval", "setseed"})
# Table references other than tables, joins and subqueries (SHOW/SUMMARIZE, PIVOT ...).
_REFUSED_REFS = frozenset({"SHOW_REF", "PIVOT", "COLUMN_DATA"})
# Table functions with a harmless scalar form (unnest(list) in a select list).
_ALSO_SCALAR = frozenset({"unnest"})
_SELECT = "SELECT subscriber_id FROM subscribers WHERE "
_MAX_LENGTH = 20_000


def condition_query(condition: str, field: str = "where") -> str:
    """The query that selects the subscribers matching `condition`, after checking its tree.

    Raises MailflowError naming `field` when the condition is anything but one boolean
    expression over the readable tables.
    """
    if len(condition) > _MAX_LENGTH:
        raise MailflowError(f"{field}: longer than {_MAX_LENGTH:,} characters")
    query = _SELECT + condition
    tree = _parse(query, field)
    _check_shape(tree, field)
    _check_nodes(tree["statements"][0]["node"]["where_clause"], field)
    return query


def matching(con: duckdb.DuckDBPyConnection, condition: str, field: str = "where") -> duckdb.DuckDBPyRelation:
    """The subscriber ids matching a checked condition, as a relation, with external access off.

    Binding errors (a misspelt column, a wrong type) surface here, naming the field.
    """
    query = condition_query(condition, field)
    # Only ever switched off: the rest of this connection's step needs no files either.
    con.execute("SET enable_external_access = false")
    try:
        return con.sql(query)
    except duckdb.Error as exc:
        raise MailflowError(f"{field}: {_first_line(exc)}") from None


def _parse(query: str, field: str) -> dict[str, Any]:
    with duckdb.connect() as parser:
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
        and not tree["statements"][0].get("named_param_map")
    )
    if not shaped:
        raise MailflowError(f"{field}: must be a single condition on subscribers (no ORDER BY, LIMIT, UNION, parameters ...)")


def _check_nodes(node: Any, field: str) -> None:
    """Walk every nested node: tables from the allow-list only, no table functions, no CTEs."""
    if isinstance(node, list):
        for item in node:
            _check_nodes(item, field)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
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
    for value in node.values():
        if isinstance(value, dict | list):
            _check_nodes(value, field)


def _name(function: Any) -> str:
    return str((function or {}).get("function_name", "")).lower()


@cache
def _refused_functions() -> frozenset[str]:
    """Functions that exist only as table functions (file readers, `query`, `glob` ...) or read state."""
    with duckdb.connect() as con:
        rows = con.execute(q("table_only_functions")).fetchall()
    return (frozenset(name.lower() for (name,) in rows) | REFUSED_FUNCTIONS) - _ALSO_SCALAR


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
