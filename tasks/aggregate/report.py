"""Campaign results from the warehouse, as rows, Markdown or JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.tally import OUTCOMES

COUNT_COLUMNS = ("audience", "sent", "delivered", "deferred", "bounced", "failed", "suppressed", "in_doubt", "pending", "held")


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
    # `held` is newer than some warehouses' view: it is defined again when the warehouse is next written
    variants = [{k: r.get(k, 0) for k in ("variant", *COUNT_COLUMNS)} for r in rows]
    total = {k: sum(v[k] for v in variants) for k in COUNT_COLUMNS}
    next_retry = con.execute(q("campaign_next_retry"), {"campaign_id": campaign_id}).fetchone()[0]
    return {"campaign_id": campaign_id, "name": rows[0]["name"], "status": rows[0]["status"],
            "next_retry": next_retry.astimezone(UTC).isoformat() if next_retry else None, "variants": variants, "total": total}


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    shown = [k for k in COUNT_COLUMNS if k != "held" or report["total"][k]]  # held: only an A/B remainder has any
    header = ["variant", *shown]
    rows = [[v["variant"], *(v[k] for k in shown)] for v in report["variants"]]
    rows.append(["total", *(report["total"][k] for k in shown)])
    title = f"## Campaign {report['name']} ({report['campaign_id']}) — {report['status']}"
    notes = [f"{v['audience']} in the holdout were mailed nothing (the control group)." for v in report["variants"]
             if v["variant"] == "holdout"]
    notes += [f"{v['held']} in the remainder are held for the A/B winner." for v in report["variants"]
              if v["variant"] == "remainder" and v["held"]]
    if report.get("next_retry"):
        notes.append(f"Next retry of deferred recipients: {report['next_retry']}")
    if report.get("ledgers_ahead"):
        notes.append("The send ledgers hold outcomes the warehouse has not loaded yet: run `mailflow aggregate` "
                     "for these figures to include them.")
    return f"{title}\n\n{markdown_table(header, rows)}\n" + "".join(f"\n{n}\n" for n in notes)


def ledgers_ahead(report: dict, ledger_totals: dict[str, int]) -> bool:
    """Whether the campaign's send ledgers (tasks/files/tally.py totals) hold outcomes the report's figures lack."""
    return any(ledger_totals.get(k, 0) != report["total"][k] for k in ("sent", *OUTCOMES))


def report_from_warehouse(warehouse, campaign_id: str) -> dict:
    from mailflow.tasks.core.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return campaign_report(con, campaign_id)
