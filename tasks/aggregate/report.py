"""A campaign's results from the warehouse: one dict with stable keys (what `report --format json` prints)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.tally import OUTCOMES

REPORT_VERSION = 1  # bumped when a key of the JSON changes meaning or goes away (added keys keep it)
COUNT_COLUMNS = ("audience", "sent", "delivered", "deferred", "bounced", "failed", "suppressed", "in_doubt", "pending", "held")
# Said wherever a human rate is shown: what the marts (sql/models/) leave out of it.
HUMAN_NOTE = ("human = machine opens and clicks left out: privacy and image proxies' pixel fetches (Apple Mail Privacy "
              "Protection, Gmail's image proxy, opens within seconds of delivery) and link scanners' clicks (every link "
              "of a message clicked within seconds, before any open; known scanner user agents). Raw counts keep them.")
TOP = 10  # domains and links a report lists
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
MARTS = ("engagement_by_variant", "engagement_by_provider", "engagement_by_domain", "engagement_by_link", "engagement_by_hour")
# Rates the report gives a Wilson interval, with the counts they are made of (successes, trials).
INTERVALS = {"human_open_rate": ("human_unique_opens", "delivered"), "human_click_rate": ("human_unique_clicks", "delivered"),
             "open_rate": ("unique_opens", "delivered"), "click_rate": ("unique_clicks", "delivered")}


def wilson(successes: int, trials: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval of a proportion: sound at 0, at 1 and in small samples, where the normal one is not."""
    if not trials:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for item in counts:
        for key, n in item.items():
            total[key] = total.get(key, 0) + n
    return total


def campaign_report(con: duckdb.DuckDBPyConnection, campaign_id: str, *, top: int = TOP) -> dict:
    """Delivery, engagement (raw and human), bounces, providers, domains, links, hours and the A/B decision."""
    params = {"campaign_id": campaign_id}
    delivery = rows(con, q("campaign_report"), params)
    if not delivery:
        raise MailflowError(f"no campaign {campaign_id!r} in the warehouse (see `mailflow sql \"select * from campaigns\"`)")
    # `held` is newer than some warehouses' view: it is defined again when the warehouse is next written
    variants = [{k: r.get(k, 0) for k in ("variant", *COUNT_COLUMNS)} for r in delivery]
    total = {k: sum(v[k] for v in variants) for k in COUNT_COLUMNS}
    next_retry = con.execute(q("campaign_next_retry"), params).fetchone()[0]
    present = {name for (name,) in con.execute(q("report_tables_present")).fetchall()}
    marts = {name: name in present for name in MARTS}

    def mart(name: str, query: str, **extra) -> list[dict]:
        return rows(con, q(query), params | extra) if marts[name] else []

    engagement = mart("engagement_by_variant", "report_engagement_by_variant")
    by_variant = [with_intervals(r) for r in engagement if r["variant"] != "*"]
    engaged_total = next((with_intervals(r) for r in engagement if r["variant"] == "*"), None)
    bounces = rows(con, q("report_bounces"), params)
    return {
        "report_version": REPORT_VERSION, "campaign_id": campaign_id, "name": delivery[0]["name"],
        "status": delivery[0]["status"],
        "next_retry": next_retry.astimezone(UTC).isoformat() if next_retry else None,
        "variants": variants, "total": total, "human": HUMAN_NOTE, "marts": marts,
        "funnel": funnel(total, engaged_total),
        "engagement": {"variants": by_variant, "total": engaged_total},
        "bounces": {"by_path": bounce_paths(bounces), "by_reason": bounces},
        "complaints": (engaged_total or {}).get("complaints", 0), "unsubscribes": (engaged_total or {}).get("unsubscribes", 0),
        "providers": mart("engagement_by_provider", "report_engagement_by_provider"),
        "domains": mart("engagement_by_domain", "report_engagement_by_domain", top=top),
        "links": mart("engagement_by_link", "report_engagement_by_link", top=top),
        "hours": mart("engagement_by_hour", "report_engagement_by_hour"),
        "ab": ab_decision(con, campaign_id) if "ab_decisions" in present else None,
    }


def with_intervals(row: dict) -> dict:
    """The row and `ci`: each rate's 95% Wilson interval [low, high], None over nothing delivered."""
    return row | {"ci": {rate: wilson(row[part] or 0, row[whole] or 0) for rate, (part, whole) in INTERVALS.items()}}


def funnel(total: dict, engaged: dict | None) -> list[dict]:
    """audience → sent → delivered → opened → clicked: recipients at each stage, and how many were human."""
    engaged = engaged or {}
    stages = [("audience", total["audience"], total["audience"]), ("sent", total["sent"], total["sent"]),
              ("delivered", total["delivered"], total["delivered"]),
              ("opened", engaged.get("unique_opens", 0), engaged.get("human_unique_opens", 0)),
              ("clicked", engaged.get("unique_clicks", 0), engaged.get("human_unique_clicks", 0))]
    return [{"stage": stage, "recipients": n or 0, "human": h or 0} for stage, n, h in stages]


def bounce_paths(bounces: list[dict]) -> dict[str, dict[str, int]]:
    """{path: {kind: count}} with both paths always present, so a report can say 'none' for either."""
    found: dict[str, dict[str, int]] = {"smtp_reply": {}, "bounce_message": {}}
    for row in bounces:
        kinds = found.setdefault(row["path"], {})
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + row["bounces"]
    return found


def ab_decision(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict | None:
    """The latest stored A/B decision, every column as stored, its JSON columns parsed; None before one."""
    found = rows(con, q("report_ab_decision"), {"campaign_id": campaign_id})
    if not found:
        return None
    decision = found[0]
    decision.pop("campaign_id", None)
    for key, value in decision.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                decision[key] = json.loads(value)
            except ValueError:
                pass
        elif hasattr(value, "isoformat"):
            decision[key] = value.isoformat()
    return decision


def ledgers_ahead(report: dict, ledger_totals: dict[str, int]) -> bool:
    """Whether the campaign's send ledgers (tasks/files/tally.py totals) hold outcomes the report's figures lack."""
    return any(ledger_totals.get(k, 0) != report["total"][k] for k in ("sent", *OUTCOMES))


def report_from_warehouse(warehouse: Path, campaign_id: str) -> dict:
    from mailflow.tasks.core.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return campaign_report(con, campaign_id)


def full_report(home: Path, warehouse: Path, campaign_id: str) -> dict:
    """The warehouse's report with the campaign's state from its files, which are ahead of the last aggregate,
    and whether its ledgers hold outcomes not loaded yet."""
    from mailflow.tasks.files.lifecycle import state_of
    from mailflow.tasks.files.tally import ledger_tally

    data = report_from_warehouse(warehouse, campaign_id)
    data["status"] = state_of(home, campaign_id) or data["status"]
    data["ledgers_ahead"] = ledgers_ahead(data, ledger_tally(home, campaign_id).poll().totals)
    return data
