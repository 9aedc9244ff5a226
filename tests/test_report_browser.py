"""The HTML report in a real browser (headless Debian chromium): every chart drawn, nothing fetched, a screenshot taken."""

from __future__ import annotations

from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.aggregate.report import campaign_report
from mailflow.tasks.aggregate.report_page import write_html_report
from tests.support.browser import browser  # noqa: F401 - the fixture
from tests.support.report_campaign import engaged_campaign, planned_campaign

# Per chart: its title and how many of its marks (bars, line and rule segments, points) have a visible size.
DRAWN = """() => [...document.querySelectorAll('figure svg')].map(svg => ({
  title: svg.querySelector('title').textContent,
  marks: [...svg.querySelectorAll('g.role-mark > path, g.role-mark > line')]
           .filter(m => {
             const b = m.getBoundingClientRect();  // a bar of zero is a line of no width: not drawn
             return m.parentElement.classList.contains('mark-rect') ? b.width > 0.5 && b.height > 0.5 : b.width > 0 || b.height > 0;
           }).length,
  width: svg.getBoundingClientRect().width,
}))"""


def open_report(browser, path, tmp_path, name):  # noqa: F811
    """The page loaded from disk with every request and policy complaint recorded, and a screenshot of it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, complaints = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None)
    assert page.goto(path.as_uri()).status in (0, 200, None)  # file:// has no HTTP status
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    return page, requests, complaints, shot


def test_every_chart_of_the_report_is_drawn_in_chromium_and_nothing_is_fetched(con, home, tmp_path, browser):  # noqa: F811
    engaged_campaign(con, home, tmp_path)
    path = write_html_report(home, campaign_report(con, "news"))
    assert path == home / "reports" / "news.html"
    page, requests, complaints, shot = open_report(browser, path, tmp_path, "report")
    charts = {c["title"]: c for c in page.evaluate(DRAWN)}
    assert list(charts) == ["Delivery funnel", "Variants: human rates with 95% intervals", "Providers", "Top links",
                            "Opens and clicks over time"]
    # funnel: 5 stages + 2 human bars; variants: 2 x 2 intervals and points; providers: 2 x 3 bars; links: 2 + 1 visible
    # bars; hours: 4 series lines and their points
    assert charts["Delivery funnel"]["marks"] == 7
    assert charts["Variants: human rates with 95% intervals"]["marks"] == 8
    assert charts["Providers"]["marks"] == 4  # gmail's open and click rates are zero
    assert charts["Top links"]["marks"] == 3
    assert charts["Opens and clicks over time"]["marks"] >= 4 + 4
    assert all(c["width"] > 200 for c in charts.values())
    assert page.locator("table").count() == 9 and page.locator("h2").count() == 8
    assert requests == [path.as_uri()] and complaints == []
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_with_nothing_sent_yet_renders_its_funnel_alone(con, home, tmp_path, browser):  # noqa: F811
    planned_campaign(con, home, tmp_path)
    refresh_marts(con, touched=False)
    path = write_html_report(home, campaign_report(con, "news"))
    page, requests, complaints, shot = open_report(browser, path, tmp_path, "empty")
    charts = page.evaluate(DRAWN)
    assert [c["title"] for c in charts] == ["Delivery funnel"] and charts[0]["marks"] == 1  # the audience; the rest are zero
    assert requests == [path.as_uri()] and complaints == [] and shot.stat().st_size > 5_000
