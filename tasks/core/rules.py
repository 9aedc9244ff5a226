"""Block and allow rules for addresses: `a@b.c`, `*@domain`, `re:regex` — managed, and applied to frames."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q

PROBE = "someone@example.com"  # an address to run a new regex rule over


@dataclass(frozen=True)
class Rule:
    pattern: str
    action: str  # block | allow
    kind: str    # exact | domain | regex
    value: str


def parse_rule(pattern: str, action: str) -> Rule:
    """`a@b.c` exact, `*@domain` a whole domain, `re:...` a regex over the whole address."""
    text = pattern.strip()
    if text.startswith("re:"):
        if not text[3:]:
            raise MailflowError(f"rule {pattern!r}: the regex is empty")
        check_regex(pattern, text[3:])
        return Rule(text, action, "regex", text[3:])
    if text.startswith("*@") and "." in text[2:] and "@" not in text[2:]:
        return Rule(text.lower(), action, "domain", text[2:].lower().rstrip("."))
    local, at, domain = text.rpartition("@")
    if at and local and domain and "*" not in text:
        return Rule(text, action, "exact", f"{local}@{domain.lower()}")
    raise MailflowError(f"rule {pattern!r}: expected an address (a@b.c), a domain (*@b.c) or a regex (re:...)")


def check_regex(pattern: str, regex: str) -> None:
    """Refuse a regex that either engine running rules cannot compile: Polars (Rust regex) screens
    ingest, DuckDB (RE2) plans. Their syntaxes differ from each other and from Python's re (RE2
    caps repetition at 1000, Rust refuses `a{,3}`, neither has look-around or back-references),
    and a rule one of them refuses would fail every later ingest or plan."""
    try:
        pl.Series([PROBE], dtype=pl.String).str.contains(regex)
    except pl.exceptions.PolarsError as exc:
        raise MailflowError(f"rule {pattern!r}: Polars cannot run this regex at ingest: {_polars_reason(exc)}") from None
    with duckdb.connect() as con:
        try:
            con.execute(q("check_regex"), {"email": PROBE, "regex": regex}).fetchall()
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0].removeprefix("Invalid Input Error: ")
            raise MailflowError(f"rule {pattern!r}: DuckDB cannot run this regex in plans: {reason}") from None


def _polars_reason(exc: Exception) -> str:
    """The one line of a Rust regex error that says what is wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return said[0] if said else lines[0].removeprefix("regex error: ")


def add_rule(con: duckdb.DuckDBPyConnection, pattern: str, action: str) -> Rule:
    rule = parse_rule(pattern, action)
    con.execute(q("upsert_rule"), {"pattern": rule.pattern, "action": action, "kind": rule.kind, "value": rule.value})
    return rule


def remove_rule(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    return bool(con.execute(q("delete_rule"), {"pattern": pattern.strip()}).fetchall())


def load_rules(con: duckdb.DuckDBPyConnection) -> list[Rule]:
    return [Rule(*row) for row in con.execute(q("list_rules")).fetchall()]


def blocked_by(rules: list[Rule], email: pl.Expr) -> pl.Expr:
    """The pattern of the first block rule that matches, unless an allow rule matches too; else null.

    Ingest's twin of the warehouse macro blocked_by_rule (sql/views/address_rules.sql), which plans
    use: Polars keeps a million-row ingest fast, and a test holds the two to the same answers."""
    domain = email.str.split_exact("@", 1).struct.field("field_1")

    def matches(rule: Rule) -> pl.Expr:
        if rule.kind == "exact":
            return email == rule.value
        if rule.kind == "domain":
            return domain == rule.value
        return email.str.contains(rule.value)

    blocks = [r for r in rules if r.action == "block"]
    if not blocks:
        return pl.lit(None, pl.String)
    allowed = pl.any_horizontal([matches(r) for r in rules if r.action == "allow"] or [pl.lit(False)])
    first = pl.coalesce([pl.when(matches(r)).then(pl.lit(r.pattern)) for r in blocks])
    return pl.when(allowed.fill_null(False)).then(None).otherwise(first)
