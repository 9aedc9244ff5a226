"""The HTML report: one self-contained, offline, printable page, each chart beside the table it draws."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

from mailflow.tasks.aggregate.report_text import Table, sections, title

STYLE = """
:root{--ink:#1d2430;--muted:#5b6577;--line:#dde2ea;--band:#f5f7fa;--accent:#1f4e8c}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#fff}
header{padding:1.5rem 2rem 1rem;border-bottom:3px solid var(--accent)}
header h1{font-size:1.5rem;margin:0 0 .25rem}
header p{margin:0;color:var(--muted)}
.state{display:inline-block;padding:.05rem .5rem;border-radius:.75rem;background:var(--accent);color:#fff;font-size:.85rem}
main{padding:0 2rem 2rem;max-width:80rem}
section{margin:1.75rem 0;break-inside:avoid}
h2{font-size:1.1rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
.pair{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
figure{margin:0;flex:0 0 auto}
figure svg{max-width:100%;height:auto}
.tables{flex:1 1 28rem;min-width:0;overflow-x:auto}
table{border-collapse:collapse;margin:0 0 1rem;font-variant-numeric:tabular-nums}
caption{text-align:left;color:var(--muted);font-size:.85rem;padding-bottom:.25rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .6rem;text-align:right;white-space:nowrap}
th{background:var(--band);font-weight:600}
th:first-child,td:first-child{text-align:left}
th.text,td.text{text-align:left}td.text{white-space:normal;word-break:break-all}
p.note{color:var(--muted);max-width:60rem}
footer{color:var(--muted);padding:1rem 2rem;border-top:1px solid var(--line);font-size:.85rem}
@media print{header{border-bottom-width:1px}main{padding:0 1rem}.pair{display:block}section{page-break-inside:avoid}a{color:inherit}}
"""
# No script and no outside resource: the policy also keeps a browser from fetching anything the page might name.
TEXT_COLUMNS = {"url", "reason", "source", "kind", "path"}  # left-aligned, wrapped; numbers stay right-aligned
TEXT = ' class="text"'
POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def table_html(table: Table, caption: str) -> str:
    header, rows = table
    head = "".join(f'<th scope="col"{TEXT if h in TEXT_COLUMNS else ""}>{html.escape(str(h))}</th>' for h in header)
    body = "".join("<tr>" + "".join(cell(header[i], v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(column: str, value) -> str:
    text = "" if value is None else str(value)
    if column == "url" and text.startswith(("https://", "http://")):  # a plain link to the campaign's target, never fetched
        return f'<td class="text"><a href="{html.escape(text)}" rel="noreferrer noopener">{html.escape(text)}</a></td>'
    return f'<td{TEXT if column in TEXT_COLUMNS else ""}>{html.escape(text)}</td>'


def report_html(report: dict, *, charts: bool = True, now: datetime | None = None) -> str:
    """The page; `charts=False` leaves the charts out (and the chart stack unimported)."""
    drawn: dict[str, str] = {}
    if charts:
        from mailflow.tasks.aggregate.report_charts import charts as draw

        drawn = draw(report)
    parts = []
    for n, (heading, tables, said) in enumerate(sections(report)):
        chart = drawn.get(heading)
        figure = f'<figure aria-label="{html.escape(heading)} chart">{chart}</figure>' if chart else ""
        body = "".join(table_html(t, heading if len(tables) == 1 else f"{heading} ({i + 1} of {len(tables)})")
                       for i, t in enumerate(tables))
        notes = "".join(f'<p class="note">{html.escape(s)}</p>' for s in said)
        parts.append(f'<section aria-labelledby="s{n}"><h2 id="s{n}">{html.escape(heading)}</h2>'
                     f'<div class="pair">{figure}<div class="tables">{body}</div></div>{notes}</section>')
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    name = html.escape(title(report))
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{name}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>Campaign {html.escape(report['name'])}</h1><p>{html.escape(report['campaign_id'])} · "
            f"<span class=\"state\">{html.escape(report['status'])}</span> · report made {made}</p></header>"
            f"<main>{''.join(parts)}</main>"
            f"<footer>mailflow report, format version {report['report_version']}. {html.escape(report['human'])}</footer>"
            "</body></html>\n")


def write_html_report(home: Path, report: dict) -> Path:
    """`<home>/reports/<campaign>.html`, replaced whole (written beside, then renamed) so a reader never sees half."""
    folder = home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', report['campaign_id'])}.html"
    partial = path.with_suffix(".html.partial")
    partial.write_text(report_html(report), encoding="utf-8")
    partial.replace(path)
    return path
