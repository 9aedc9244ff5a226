"""Each flow's result as table rows for its Prefect run page: plain data, no Prefect (flows/artifacts.py publishes them)."""

from __future__ import annotations

from typing import Any

OUTCOMES = ("delivered", "deferred", "bounced", "suppressed", "failed", "skipped", "in_doubt")
Rows = list[dict[str, Any]]


def measures(pairs: dict[str, Any]) -> Rows:
    """A two-column table, one measure a row: what a run did, read top to bottom."""
    return [{"measure": name, "value": value} for name, value in pairs.items()]


def ingest_rows(results: list[dict]) -> Rows:
    return [{"file": r["source"], "rows_read": r["rows_read"], "new": r["accepted"], "updated": r["updated"],
             "unchanged": r["unchanged"], "quarantined": r["quarantined"],
             "note": "ingested before: nothing changed" if r["already_ingested"] else f"{r['seconds']:.1f} s"}
            for r in results]


def plan_rows(d: dict) -> Rows:
    return measures({"campaign": d["campaign_id"], "state": d["status"], "matched": d["matched"],
                     **{f"excluded: {rule}": n for rule, n in d["excluded"].items()},
                     "recipients": d["audience_size"], "chunks": d["chunk_count"],
                     **{f"group {name}": n for name, n in d["variants"].items()}})


def aggregate_rows(d: dict) -> Rows:
    return measures({"ledger records read": d["records_read"], "files grown": d["files_loaded"],
                     "deliveries in the warehouse": d["deliveries"], "suppressed addresses": d["suppressions"],
                     "events loaded": d["events_loaded"], "event lines rejected": d["event_lines_rejected"],
                     "reports published": ", ".join(d.get("reports", [])) or "none"})


def bounce_rows(d: dict) -> Rows:
    return measures({"messages fetched": d["fetched"], **{f"kind: {k}": n for k, n in d["kinds"].items()},
                     "unmapped to a send": d["unmapped"], "addresses suppressed": d["suppressed"], "moved": d["moved"]})


def outcome_row(label: str, counts: dict, **extra: Any) -> dict[str, Any]:
    return {"campaign": label, **{k: counts.get(k, 0) for k in OUTCOMES}, **extra}


def retry_rows(d: dict) -> Rows:
    return [outcome_row("all", d, chunks=d.get("chunks", 0), not_due=d.get("not_due", 0),
                        states=", ".join(f"{c} {s}" for c, s in d.get("campaigns", {}).items()) or "-")]


def due_rows(results: dict) -> Rows:
    return [outcome_row(cid, r, state=r.get("state") or f"not sent: {r.get('error', '?')}") for cid, r in results.items()]


def decision_rows(d: dict) -> Rows:
    return [{"campaign": x["campaign_id"], "outcome": x.get("outcome"), "winner": x.get("winner") or "-",
             "metric": x.get("metric"), "remainder": x.get("remainder_recipients", 0),
             "remainder_sent": bool(x.get("remainder_sent")), "reason": x.get("reason", "")} for x in d["decisions"]]
