"""The HTML report's charts: Altair (Vega-Lite) specs rendered to inline SVG by vl-convert, offline, no browser."""

from __future__ import annotations

import html
import re

import altair as alt
import vl_convert

from mailflow.tasks.aggregate.report_text import link_name

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
WIDTH = 420
PALETTE = ["#9db4d3", "#1f4e8c", "#f2b47e", "#b3541e"]  # light/dark pairs: raw, then human
CONFIG = {"font": FONT, "padding": {"left": 16, "right": 8, "top": 4, "bottom": 4},
          "view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 11, "grid": False},
          "title": {"fontSize": 13, "anchor": "start"}, "legend": {"orient": "bottom", "title": None}}
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def chart_svg(chart: alt.TopLevelMixin, title: str, description: str) -> str:
    """One chart as an SVG element carrying its <title> and <desc> (read by screen readers; the table beside it says it all too)."""
    spec = chart.properties(description=description).to_dict(validate=False)
    spec["config"] = CONFIG
    svg = vl_convert.vegalite_to_svg(spec)
    tag = _SVG_OPEN.search(svg).group(0)
    labelled = _XMLNS.sub("", tag).replace("<svg ", '<svg role="img" ', 1)  # inline in HTML: no namespace URLs needed
    return svg.replace(tag, f"{labelled}<title>{html.escape(title)}</title><desc>{html.escape(description)}</desc>", 1)


def counts(largest: int) -> alt.Axis:
    """An axis of whole numbers (people, events): no tick between two of them, whatever the chart's size."""
    return alt.Axis(format="d", tickMinStep=1, tickCount=max(1, min(largest, 8)))


def _series(color: str, names: list[str]) -> alt.Color:
    return alt.Color(f"{color}:N", sort=names, scale=alt.Scale(domain=names, range=PALETTE[:len(names)]))


def funnel_chart(report: dict) -> str:
    values = [{"stage": s["stage"], "series": "all", "recipients": s["recipients"]} for s in report["funnel"]]
    values += [{"stage": s["stage"], "series": "human", "recipients": s["human"]}
               for s in report["funnel"] if s["stage"] in ("opened", "clicked")]
    stages = [s["stage"] for s in report["funnel"]]
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("stage:N", sort=stages, title=None),
        x=alt.X("recipients:Q", title="recipients", axis=counts(max(v["recipients"] for v in values))),
        yOffset=alt.YOffset("series:N", sort=["all", "human"]), color=_series("series", ["all", "human"]),
        tooltip=["stage:N", "series:N", "recipients:Q"],
    ).properties(width=WIDTH, title="Delivery funnel")
    said = ", ".join(f"{s['stage']} {s['recipients']}" for s in report["funnel"])
    return chart_svg(chart, "Delivery funnel", f"Recipients at each stage: {said}.")


def hours_chart(report: dict) -> str:
    by_hour = {h["hours_since_send"]: h for h in report["hours"]}
    last = max(by_hour)
    names = {"opens": "opens", "human_opens": "human opens", "clicks": "clicks", "human_clicks": "human clicks"}
    values = [{"hour": hour, "series": name, "events": by_hour.get(hour, {}).get(key, 0)}
              for hour in range(max(last, 1) + 1) for key, name in names.items()]  # hours without events: zero
    chart = alt.Chart(alt.Data(values=values)).mark_line(point=last < 48).encode(
        x=alt.X("hour:Q", title="hours since send", scale=alt.Scale(domain=[0, max(last, 1)]), axis=counts(last)),
        y=alt.Y("events:Q", title="events", axis=counts(max(v["events"] for v in values))), color=_series("series", list(names.values())),
    ).properties(width=WIDTH, title="Opens and clicks over time")
    peak = max(report["hours"], key=lambda h: h["opens"])
    return chart_svg(chart, "Opens and clicks over time",
                     f"Opens and clicks per hour since send, hours 0 to {last}; most opens ({peak['opens']}) in hour "
                     f"{peak['hours_since_send']}.")


def variants_chart(report: dict) -> str:
    rates = {"human_open_rate": "human open rate", "human_click_rate": "human click rate"}
    values = [{"variant": r["variant"], "metric": name, "rate": r[key], "low": r["ci"][key][0], "high": r["ci"][key][1]}
              for r in report["engagement"]["variants"] for key, name in rates.items() if r["ci"][key]]
    base = alt.Chart(alt.Data(values=values)).encode(
        y=alt.Y("variant:N", title=None), yOffset=alt.YOffset("metric:N", sort=list(rates.values())),
        color=alt.Color("metric:N", sort=list(rates.values()),
                        scale=alt.Scale(domain=list(rates.values()), range=[PALETTE[1], PALETTE[3]])))
    rule = base.mark_rule(strokeWidth=2).encode(x=alt.X("low:Q", axis=alt.Axis(format="%"), title="rate (95% Wilson interval)"),
                                                x2="high:Q")
    point = base.mark_point(filled=True, size=60).encode(x="rate:Q", tooltip=["variant:N", "metric:N", "rate:Q", "low:Q", "high:Q"])
    chart = alt.layer(rule, point).properties(width=WIDTH, title="Variants: human rates with 95% intervals")
    said = "; ".join(f"{v['variant']} {v['metric']} {v['rate'] * 100:.1f}% ({v['low'] * 100:.1f} to {v['high'] * 100:.1f})"
                     for v in values)
    return chart_svg(chart, "Variants: human rates with 95% intervals", f"Per variant: {said}.")


def providers_chart(report: dict) -> str:
    rates = {"bounce_rate": "bounce rate", "human_open_rate": "human open rate", "human_click_rate": "human click rate"}
    values = [{"provider": r["provider"], "metric": name, "rate": r[key] or 0}
              for r in report["providers"] for key, name in rates.items()]
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("provider:N", title=None, sort=[r["provider"] for r in report["providers"]]),
        x=alt.X("rate:Q", axis=alt.Axis(format="%"), title="rate"),
        yOffset=alt.YOffset("metric:N", sort=list(rates.values())),
        color=alt.Color("metric:N", sort=list(rates.values()),
                        scale=alt.Scale(domain=list(rates.values()), range=["#b3541e", PALETTE[1], "#5a9e6f"])),
    ).properties(width=WIDTH, title="Providers")
    said = "; ".join(f"{r['provider']}: sent {r['sent']}, bounce rate {(r['bounce_rate'] or 0) * 100:.1f}%" for r in report["providers"])
    return chart_svg(chart, "Providers", f"Rates per mailbox provider. {said}.")


def links_chart(report: dict) -> str:
    names = {"clicks": "clicks", "human_clicks": "human clicks"}
    labels = [f"{link_name(r)} {short(r['url'])}" for r in report["links"]]
    values = [{"link": label, "series": name, "clicks": r[key]}
              for label, r in zip(labels, report["links"]) for key, name in names.items()]
    chart = alt.Chart(alt.Data(values=values)).mark_bar().encode(
        y=alt.Y("link:N", sort=labels, title=None, axis=alt.Axis(labelLimit=220)),
        x=alt.X("clicks:Q", title="clicks", axis=counts(max(v["clicks"] for v in values))),
        yOffset=alt.YOffset("series:N", sort=list(names.values())), color=_series("series", list(names.values())),
    ).properties(width=WIDTH - 80, title="Top links")
    said = "; ".join(f"{label}: {r['clicks']} clicks" for label, r in zip(labels, report["links"]))
    return chart_svg(chart, "Top links", f"Clicks per link, most clicked first. {said}.")


def short(url: str | None, limit: int = 40) -> str:
    url = re.sub(r"^https?://", "", url or "")
    return url if len(url) <= limit else url[: limit - 1] + "…"


def charts(report: dict) -> dict[str, str]:
    """SVG per section heading that has a chart; sections without data get none."""
    found = {"Funnel": funnel_chart(report)}
    if report["engagement"]["variants"] and any(any(r["ci"].values()) for r in report["engagement"]["variants"]):
        found["Engagement per variant"] = variants_chart(report)
    if report["providers"]:
        found["Providers"] = providers_chart(report)
    if report["links"]:
        found["Top links"] = links_chart(report)
    if report["hours"]:
        found["Opens and clicks over time"] = hours_chart(report)
    return found
