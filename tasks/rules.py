"""Block and allow rules for addresses: `a@b.c`, `*@domain`, `re:regex` — managed, and applied to frames."""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from tasks.sqlfiles import q


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
        try:
            re.compile(text[3:])
        except re.error as exc:
            raise MailflowError(f"rule {pattern!r}: not a valid regex ({exc})") from None
        if not text[3:]:
            raise MailflowError(f"rule {pattern!r}: the regex is empty")
        try:  # rules run in Polars (Rust regex), which lacks look-around and back-references
            pl.select(pl.lit("a@b.c").str.contains(text[3:]))
        except pl.exceptions.ComputeError:
            raise MailflowError(f"rule {pattern!r}: look-around and back-references are not supported") from None
        return Rule(text, action, "regex", text[3:])
    if text.startswith("*@") and "." in text[2:] and "@" not in text[2:]:
        return Rule(text.lower(), action, "domain", text[2:].lower().rstrip("."))
    local, at, domain = text.rpartition("@")
    if at and local and domain and "*" not in text:
        return Rule(text, action, "exact", f"{local}@{domain.lower()}")
    raise MailflowError(f"rule {pattern!r}: expected an address (a@b.c), a domain (*@b.c) or a regex (re:...)")


def add_rule(con: duckdb.DuckDBPyConnection, pattern: str, action: str) -> Rule:
    rule = parse_rule(pattern, action)
    con.execute(q("upsert_rule"), {"pattern": rule.pattern, "action": action, "kind": rule.kind, "value": rule.value})
    return rule


def remove_rule(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    return bool(con.execute(q("delete_rule"), {"pattern": pattern.strip()}).fetchall())


def load_rules(con: duckdb.DuckDBPyConnection) -> list[Rule]:
    return [Rule(*row) for row in con.execute(q("list_rules")).fetchall()]


def blocked_by(rules: list[Rule], email: pl.Expr) -> pl.Expr:
    """The pattern of the first block rule that matches, unless an allow rule matches too; else null."""
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
