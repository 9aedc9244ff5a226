"""Campaign results from the warehouse, as rows, Markdown, HTML or JSON."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from datetime import UTC

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.tally import OUTCOMES

COUNT_COLUMNS = ("audience", "sent", "delivered", "deferred", "bounced", "failed", "suppressed", "in_doubt", "pending", "held")
ENGAGEMENT_COLUMNS = ("unique_opens", "total_opens", "unique_clicks", "total_clicks", "unsubscribes")
# Said wherever an open rate is shown, until issue 13 flags privacy proxies' and scanners' fetches.
OPENS_NOTE = "all opens (machine opens not yet flagged)"
ENGAGEMENT_HEADER = {"variant": "variant", "delivered": "delivered", "unique_opens": "opens (unique)",
                     "total_opens": "opens (total)", "open_rate": "open rate", "unique_clicks": "clicks (unique)",
                     "total_clicks": "clicks (total)", "click_rate": "click rate", "click_to_open": "click-to-open",
                     "unsubscribes": "unsubscribes", "unsubscribe_rate": "unsubscribe rate"}
RATES = ("open_rate", "click_rate", "click_to_open", "unsubscribe_rate")


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
            "next_retry": next_retry.astimezone(UTC).isoformat() if next_retry else None, "variants": variants, "total": total,
            "engagement": campaign_engagement(con, campaign_id, variants)}


def campaign_engagement(con: duckdb.DuckDBPyConnection, campaign_id: str, variants: list[dict]) -> dict:
    """Opens, clicks and unsubscribes per variant that was mailed or has events, with their rates and a total."""
    cursor = con.execute(q("campaign_engagement"), {"campaign_id": campaign_id})
    names = [d[0] for d in cursor.description]
    counts = {row[0]: dict(zip(names[1:], row[1:])) for row in cursor.fetchall()}
    delivered = {v["variant"]: v["delivered"] for v in variants}
    shown = [v for v, n in delivered.items() if n or v in counts] + [v for v in counts if v not in delivered]
    rows = [with_rates({"variant": v if v is not None else "(unknown)", "delivered": delivered.get(v, 0),
                        **{k: counts.get(v, {}).get(k, 0) for k in ENGAGEMENT_COLUMNS}}) for v in shown]
    total = with_rates({"variant": "total", **{k: sum(r[k] for r in rows) for k in ("delivered", *ENGAGEMENT_COLUMNS)}})
    return {"opens": OPENS_NOTE, "variants": rows, "total": total}


def with_rates(row: dict) -> dict:
    """Rates over delivered messages; click-to-open is unique clicks over unique opens. None when nothing to divide by."""
    def ratio(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return row | {"open_rate": ratio(row["unique_opens"], row["delivered"]),
                  "click_rate": ratio(row["unique_clicks"], row["delivered"]),
                  "click_to_open": ratio(row["unique_clicks"], row["unique_opens"]),
                  "unsubscribe_rate": ratio(row["unsubscribes"], row["delivered"])}


def engagement_table(engagement: dict) -> tuple[list[str], list[list]]:
    """Header and rows (rates as percentages) of the engagement table, for Markdown and HTML alike."""
    def cell(key: str, value):
        if key in RATES:
            return "–" if value is None else f"{value * 100:.1f}%"
        return value

    rows = [[cell(k, r[k]) for k in ENGAGEMENT_HEADER] for r in [*engagement["variants"], engagement["total"]]]
    return list(ENGAGEMENT_HEADER.values()), rows


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def delivery_table(report: dict) -> tuple[list[str], list[list]]:
    shown = [k for k in COUNT_COLUMNS if k != "held" or report["total"][k]]  # held: only an A/B remainder has any
    rows = [[v["variant"], *(v[k] for k in shown)] for v in report["variants"]]
    rows.append(["total", *(report["total"][k] for k in shown)])
    return ["variant", *shown], rows


def report_notes(report: dict) -> list[str]:
    notes = [f"{v['audience']} in the holdout were mailed nothing (the control group)." for v in report["variants"]
             if v["variant"] == "holdout"]
    notes += [f"{v['held']} in the remainder are held for the A/B winner." for v in report["variants"]
              if v["variant"] == "remainder" and v["held"]]
    if report.get("next_retry"):
        notes.append(f"Next retry of deferred recipients: {report['next_retry']}")
    if report.get("ledgers_ahead"):
        notes.append("The send ledgers hold outcomes the warehouse has not loaded yet: run `mailflow aggregate` "
                     "for these figures to include them.")
    return notes


def engagement_notes(engagement: dict) -> list[str]:
    return [f"Opens: {engagement['opens']}. Privacy and image proxies (Apple Mail Privacy Protection, Gmail) fetch "
            "the pixel without anyone reading, so the open rate overstates. Rates are over delivered messages; "
            "click-to-open is unique clicks over unique opens; unsubscribes include a single list's."]


def has_engagement(report: dict) -> bool:
    engagement = report.get("engagement")
    return bool(engagement and engagement["variants"])


def report_markdown(report: dict) -> str:
    title = f"## Campaign {report['name']} ({report['campaign_id']}) — {report['status']}"
    text = f"{title}\n\n{markdown_table(*delivery_table(report))}\n" + "".join(f"\n{n}\n" for n in report_notes(report))
    if has_engagement(report):
        text += (f"\n### Engagement\n\n{markdown_table(*engagement_table(report['engagement']))}\n"
                 + "".join(f"\n{n}\n" for n in engagement_notes(report["engagement"])))
    return text


def report_html(report: dict) -> str:
    """One self-contained page (no script, no outside resource): the same tables and notes as the Markdown."""
    def table(header: list[str], rows: list[list]) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                       for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def paragraphs(notes: list[str]) -> str:
        return "".join(f"<p>{html.escape(n)}</p>" for n in notes)

    title = html.escape(f"Campaign {report['name']} ({report['campaign_id']}) — {report['status']}")
    parts = [f"<h1>{title}</h1>", "<h2>Delivery</h2>", table(*delivery_table(report)), paragraphs(report_notes(report))]
    if has_engagement(report):
        parts += ["<h2>Engagement</h2>", table(*engagement_table(report["engagement"])),
                  paragraphs(engagement_notes(report["engagement"]))]
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child,td:first-child{text-align:left}"
             "tr:last-child td{font-weight:bold}")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{title}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def ledgers_ahead(report: dict, ledger_totals: dict[str, int]) -> bool:
    """Whether the campaign's send ledgers (tasks/files/tally.py totals) hold outcomes the report's figures lack."""
    return any(ledger_totals.get(k, 0) != report["total"][k] for k in ("sent", *OUTCOMES))


def report_from_warehouse(warehouse, campaign_id: str) -> dict:
    from mailflow.tasks.core.warehouse import connect

    with connect(warehouse, read_only=True) as con:
        return campaign_report(con, campaign_id)
