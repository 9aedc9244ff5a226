"""Campaign results from the warehouse, as rows, Markdown or JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q

COUNT_COLUMNS = ("audience", "sent", "delivered", "deferred", "bounced", "failed", "suppressed", "in_doubt", "pending")


def sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for item in counts:
        total.update(item)
    return dict(total)


def campaign_report(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict:
    """The campaign's status and per-variant counts, with a total row."""
    cursor = con.execute(q("campaign_report"), {"campaign_id": campaign_id})
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    if not rows:
        raise MailflowError(f"no campaign {campaign_id!r} in the warehouse (see `mailflow sql \"select * from campaigns\"`)")
    variants = [{k: r[k] for k in ("variant", *COUNT_COLUMNS)} for r in rows]
    total = {k: sum(v[k] for v in variants) for k in COUNT_COLUMNS}
    next_retry = con.execute(q("campaign_next_retry"), {"campaign_id": campaign_id}).fetchone()[0]
    return {"campaign_id": campaign_id, "name": rows[0]["name"], "status": rows[0]["status"],
            "next_retry": next_retry.astimezone(UTC).isoformat() if next_retry else None, "variants": variants, "total": total}


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    header = ["variant", *COUNT_COLUMNS]
    rows = [[v["variant"], *(v[k] for k in COUNT_COLUMNS)] for v in report["variants"]]
    rows.append(["total", *(report["total"][k] for k in COUNT_COLUMNS)])
    title = f"## Campaign {report['name']} ({report['campaign_id']}) — {report['status']}"
    retry = f"\nNext retry of deferred recipients: {report['next_retry']}\n" if report.get("next_retry") else ""
    return f"{title}\n\n{markdown_table(header, rows)}\n{retry}"


def report_from_warehouse(warehouse, campaign_id: str) -> dict:
    from mailflow.tasks.core.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return campaign_report(con, campaign_id)
