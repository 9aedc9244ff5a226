"""A campaign report as tables and notes, and as Markdown (terminals, Prefect artifacts); no chart stack here."""

from __future__ import annotations

from mailflow.tasks.ab.lift import lift_line
from mailflow.tasks.aggregate.report import COUNT_COLUMNS

Table = tuple[list[str], list[list]]
HOURS_SHOWN = 48  # the Markdown lists hour by hour this far; the HTML chart draws every hour


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def interval(ci: list[float] | None) -> str:
    return "–" if not ci else f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def title(report: dict) -> str:
    return f"Campaign {report['name']} ({report['campaign_id']}) — {report['status']}"


def funnel_table(report: dict) -> Table:
    base = report["funnel"][0]["recipients"]
    rows = [[s["stage"], s["recipients"], s["human"] if s["stage"] in ("opened", "clicked") else "",
             pct(s["recipients"] / base if base else None)] for s in report["funnel"]]
    return ["stage", "recipients", "of them human", "of the audience"], rows


def delivery_table(report: dict) -> Table:
    shown = [k for k in COUNT_COLUMNS if k != "held" or report["total"][k]]  # held: only an A/B remainder has any
    rows = [[v["variant"], *(v[k] for k in shown)] for v in report["variants"]]
    rows.append(["total", *(report["total"][k] for k in shown)])
    return ["variant", *shown], rows


def engagement_table(report: dict) -> Table:
    """Per variant, raw and human side by side, the human rates' 95% intervals beside them."""
    engagement = report["engagement"]
    header = ["variant", "delivered", "opens raw", "opens human", "open rate raw", "open rate human (95% CI)",
              "clicks raw", "clicks human", "click rate raw", "click rate human (95% CI)", "click-to-open raw / human",
              "unsubscribes", "complaints"]
    rows = []
    for r in [*engagement["variants"], *([engagement["total"]] if engagement["total"] else [])]:
        rows.append([
            "total" if r["variant"] == "*" else r["variant"], r["delivered"], r["unique_opens"], r["human_unique_opens"],
            pct(r["open_rate"]), f"{pct(r['human_open_rate'])} ({interval(r['ci']['human_open_rate'])})",
            r["unique_clicks"], r["human_unique_clicks"], pct(r["click_rate"]),
            f"{pct(r['human_click_rate'])} ({interval(r['ci']['human_click_rate'])})",
            f"{pct(r['click_to_open'])} / {pct(r['human_click_to_open'])}", r["unsubscribes"], r["complaints"]])
    return header, rows


def bounce_path_table(report: dict) -> Table:
    names = {"smtp_reply": "SMTP reply while sending", "bounce_message": "bounce message or webhook, later"}
    rows = [[names.get(path, path), kinds.get("hard", 0), kinds.get("soft", 0), sum(kinds.values())]
            for path, kinds in report["bounces"]["by_path"].items()]
    return ["path", "hard", "soft", "total"], rows


def bounce_reason_table(report: dict) -> Table:
    return (["path", "source", "kind", "reason", "bounces"],
            [[r["path"], r["source"], r["kind"], r["reason"], r["bounces"]] for r in report["bounces"]["by_reason"]])


def group_table(report: dict, key: str) -> Table:
    """Providers or domains: how many were mailed and how they did, raw and human."""
    rows = [[r[key], r["sent"], r["delivered"], pct(r["bounce_rate"]), pct(r["open_rate"]), pct(r["human_open_rate"]),
             pct(r["click_rate"]), pct(r["human_click_rate"]), r["complaints"]] for r in report[key + "s"]]
    return [key, "sent", "delivered", "bounce rate", "open rate raw", "open rate human", "click rate raw",
            "click rate human", "complaints"], rows


def link_table(report: dict) -> Table:
    rows = [[link_name(r), r["url"], r["clicks"], r["unique_clicks"], r["human_clicks"], r["human_unique_clicks"]]
            for r in report["links"]]
    return ["link", "url", "clicks", "clickers", "human clicks", "human clickers"], rows


def link_name(row: dict) -> str:
    return "templated" if row["link"] is None else f"#{row['link']}"


def hours_table(report: dict) -> Table:
    rows = [[h["hours_since_send"], h["opens"], h["human_opens"], h["clicks"], h["human_clicks"]]
            for h in report["hours"] if h["hours_since_send"] < HOURS_SHOWN]
    later = [h for h in report["hours"] if h["hours_since_send"] >= HOURS_SHOWN]
    if later:
        rows.append([f"{HOURS_SHOWN}+", *(sum(h[k] for h in later) for k in ("opens", "human_opens", "clicks", "human_clicks"))])
    return ["hours since send", "opens", "human opens", "clicks", "human clicks"], rows


def ab_lines(report: dict) -> list[str]:
    """The decision in words, then each statistic it stored (lists of rows, the variants' inputs among them, are tables)."""
    ab = report["ab"]
    if not ab:
        return []
    winner = ab.get("winner")
    lines = [f"Outcome: {ab.get('outcome', '')}" + (f", winner {winner}" if winner else ", no winner")
             + (f". {ab['reason']}" if ab.get("reason") else "")]
    holdout = ab.get("holdout")
    readable = isinstance(holdout, dict) and isinstance(holdout.get("mailed"), dict)  # the shape tasks/ab/lift.py stores
    skip = {"outcome", "winner", "reason"} | set(ab_row_lists(ab)) | ({"holdout", "holdout_lift"} if readable else set())
    lines += [f"{key.replace('_', ' ')}: {fmt(value)}" for key, value in ab.items() if key not in skip and value is not None]
    if readable:
        lines.append(f"{lift_line(holdout)}: {holdout.get('measures', '')}")
    return lines


def ab_row_lists(ab: dict) -> dict[str, list[dict]]:
    """The decision's lists of rows: `variants` (or `inputs`, a variant -> figures object), `comparisons` ..."""
    found = {key: value for key, value in ab.items() if isinstance(value, list) and value and isinstance(value[0], dict)}
    inputs = ab.get("inputs")
    if isinstance(inputs, dict) and all(isinstance(v, dict) for v in inputs.values()):
        found["inputs"] = [{"variant": name, **figures} for name, figures in inputs.items()]
    return found


def ab_tables(report: dict) -> list[Table]:
    """Per list of rows one table; a row's interval (ci_low, ci_high) shown as one 95% CI column."""
    tables = []
    for rows in ab_row_lists(report["ab"] or {}).values():
        keys = [k for k in rows[0] if k not in ("ci_low", "ci_high")]
        has_ci = "ci_low" in rows[0]
        body = [[pct(r.get(k)) if k.endswith("rate") else fmt(r.get(k)) for k in keys]
                + ([interval([r["ci_low"], r["ci_high"]] if r.get("ci_low") is not None else None)] if has_ci else [])
                for r in rows]
        tables.append(([k.replace("_", " ") for k in keys] + (["95% CI"] if has_ci else []), body))
    return tables


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def notes(report: dict) -> list[str]:
    found = [f"{v['audience']} in the holdout were mailed nothing (the control group)." for v in report["variants"]
             if v["variant"] == "holdout"]
    found += [f"{v['held']} in the remainder are held for the A/B winner." for v in report["variants"]
              if v["variant"] == "remainder" and v["held"]]
    winner = (report.get("ab") or {}).get("winner") if (report.get("ab") or {}).get("final") else None
    found += [f"The remainder ({v['sent']} sent so far) got {winner}, the A/B decision's pick; its rows keep the name `remainder`."
              for v in report["variants"] if v["variant"] == "remainder" and v["sent"] and winner]
    if report.get("next_retry"):
        found.append(f"Next retry of deferred recipients: {report['next_retry']}")
    if report.get("ledgers_ahead"):
        found.append("The send ledgers hold outcomes the warehouse has not loaded yet: run `mailflow aggregate` "
                     "for these figures to include them.")
    if not all(report["marts"].values()):
        found.append("This warehouse has no engagement tables yet: run `mailflow aggregate`.")
    return found


def sections(report: dict) -> list[tuple[str, list[Table], list[str]]]:
    """(heading, tables, notes) in the order every format shows them; a section with nothing to show is left out."""
    engaged = bool(report["engagement"]["variants"])
    found = [("Funnel", [funnel_table(report)], ["Opened and clicked count recipients (unique); " + report["human"]]),
             ("Delivery", [delivery_table(report)], notes(report))]
    if engaged:
        found.append(("Engagement per variant", [engagement_table(report)],
                      ["Rates are over delivered messages; click-to-open is unique clicks over unique opens; "
                       "95% CI: Wilson score interval. Unsubscribes include a single list's."]))
    found.append(("Bounces", [bounce_path_table(report)] + ([bounce_reason_table(report)] if report["bounces"]["by_reason"] else []),
                  [f"Complaints: {report['complaints']}. Unsubscribes: {report['unsubscribes']}."]))
    if report["providers"]:
        found.append(("Providers", [group_table(report, "provider")], []))
    if report["domains"]:
        found.append(("Top domains", [group_table(report, "domain")], []))
    if report["links"]:
        found.append(("Top links", [link_table(report)], []))
    if report["hours"]:
        found.append(("Opens and clicks over time", [hours_table(report)], []))
    if report["ab"]:
        found.append(("A/B decision", ab_tables(report), ab_lines(report)))
    return found


def report_markdown(report: dict) -> str:
    text = f"## {title(report)}\n"
    for heading, tables, said in sections(report):
        text += f"\n### {heading}\n\n" + "\n\n".join(markdown_table(*t) for t in tables) + "\n"
        text += "".join(f"\n{n}\n" for n in said)
    return text
