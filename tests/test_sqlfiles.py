"""Named queries: every one parses, and prepares against a fresh warehouse."""

import re

import pytest

from mailflow.tasks.core.sqlfiles import parse_queries, queries, schema_migrations
from mailflow.tasks.core.warehouse import INPUT_SCHEMAS, empty_input, migrate
from tests.support.marts import touched
from tests.support.new_events import new_events


def test_parse_names_docs_and_sql():
    text = "-- name: one\n-- why one\nSELECT 1;\n\n-- name: two\nSELECT 2\n"
    parsed = parse_queries(text, "x.sql")
    assert list(parsed) == ["one", "two"]
    assert parsed["one"].doc == "why one"
    assert parsed["one"].sql == "SELECT 1"


def test_duplicate_and_empty_queries_are_refused():
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "x.sql")
    with pytest.raises(ValueError, match="no SQL"):
        parse_queries("-- name: a\n-- only a comment\n", "x.sql")


def test_every_named_query_prepares(con):
    for name in INPUT_SCHEMAS:
        con.register(name, empty_input(name))
    new_events(con)  # the aggregate's TEMP table of the events it loaded this run (tasks/aggregate/subscriptions.py reads it)
    touched(con)  # and of the campaigns and subscribers they touched (tasks/aggregate/marts.py reads them)
    assert len(queries()) >= 15
    staged = [query for name, query in queries().items() if name.startswith("stage_")]
    waiting = list(staged)  # stage_* queries build the temp tables later queries read, perhaps another file's
    while waiting:
        failed = []
        for query in waiting:
            try:
                con.execute(query.sql, {p: None for p in re.findall(r"\$([a-z_]+)", query.sql)})
            except Exception as exc:  # noqa: BLE001 - it may read a table a later one builds
                failed.append((query, exc))
        if len(failed) == len(waiting):
            pytest.fail("\n".join(f"{q.source}: {q.name}: {exc}" for q, exc in failed))
        waiting = [q for q, _ in failed]
    drops = [query for query in queries().values() if query.sql.upper().startswith("DROP")]
    settings = [query for query in queries().values() if query.sql.upper().startswith("SET ")]
    for query in settings:  # nor a SET: executed, a list parameter given an empty list
        con.execute(query.sql, {p: [] for p in re.findall(r"\$([a-z_]+)", query.sql)})
    creates = [query for query in queries().values() if query.sql.upper().startswith("CREATE") and query not in staged]
    for query in creates:  # lasting tables migrate() creates on every open (sql/queries/marts.sql): executed again
        con.execute(query.sql)
    for query in queries().values():
        if query in staged or query in drops or query in settings or query in creates:
            continue  # DuckDB cannot PREPARE a CREATE or DROP: those are executed instead
        try:
            con.execute(f"PREPARE check_{query.name} AS {query.sql}")
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{query.source}: {query.name}: {exc}")
    for query in drops:
        con.execute(query.sql)


def test_migrate_is_idempotent_and_recorded(con):
    assert migrate(con) == []
    versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()]
    assert versions == [v for v, _, _ in schema_migrations() if v]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"subscribers", "quarantine", "lists", "list_memberships", "suppressions", "campaigns",
            "campaign_recipients", "deliveries", "campaign_stats"} <= tables


def test_migration_004_gives_old_quarantine_rows_a_hash_a_count_and_a_bounded_raw(tmp_path):
    import hashlib

    import duckdb

    from mailflow.tasks.core.sqlfiles import schema_migrations

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    for version, _, sql in schema_migrations():
        if version < 4:
            con.execute(sql)
    long = "a@example.com," + "x" * 10_000
    con.execute("INSERT INTO quarantine (batch_id, source, line, reason, raw) VALUES "
                "('b', 's.csv', 2, 'field_too_long: ...', ?), ('b', 's.csv', 3, 'invalid_email: ...', 'x,y')", [long])
    con.execute("INSERT INTO schema_migrations (version, name) SELECT 0 + v, 'old' FROM range(1, 4) AS t(v)")
    assert [name for name in migrate(con) if name.startswith("004")] == ["004_quarantine_bounds"]
    rows = con.execute("SELECT line, raw, raw_sha256, count FROM quarantine ORDER BY line").fetchall()
    assert rows[0][1] == long[:4096] + f" …[truncated: {len(long):,} bytes]"
    assert rows[0][2] == hashlib.sha256(long.encode()).hexdigest() and rows[0][3] == 1
    assert rows[1][1:] == ("x,y", hashlib.sha256(b"x,y").hexdigest(), 1)
