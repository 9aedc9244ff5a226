"""The campaign report: its data (funnel, raw and human rates, intervals, bounces by path, top lists, hours, A/B), as Markdown, JSON and HTML."""

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mailflow.tasks.ab.lift import holdout_lift
from mailflow.tasks.ab.stats import Arm
from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.aggregate.published import artifact_key, touched_campaigns
from mailflow.tasks.aggregate.report import HUMAN_NOTE, campaign_report, wilson
from mailflow.tasks.aggregate.report_page import report_html
from mailflow.tasks.aggregate.report_text import report_markdown
from tests.support.marts import touched
from tests.support.report_campaign import engaged_campaign, planned_campaign
from tests.support.report_page import assert_self_contained


def test_the_wilson_interval_matches_the_textbook_values():
    assert wilson(0, 10) == [0.0, 0.2775]  # the normal interval would say [0, 0]: nothing seen is not nothing there
    assert wilson(5, 10) == [0.2366, 0.7634]
    assert wilson(10, 10) == [0.7225, 1.0]
    assert wilson(0, 0) is None


def test_the_report_counts_raw_and_human_engagement_per_variant_with_intervals(con, home, tmp_path):
    group = engaged_campaign(con, home, tmp_path)
    a, b = group["A"], group["B"]
    report = campaign_report(con, "news")
    assert report["funnel"] == [{"stage": "audience", "recipients": 40, "human": 40}, {"stage": "sent", "recipients": 40, "human": 40},
                                {"stage": "delivered", "recipients": 39, "human": 39},
                                {"stage": "opened", "recipients": 4, "human": 3}, {"stage": "clicked", "recipients": 2, "human": 1}]
    rows = {r["variant"]: r for r in report["engagement"]["variants"]}
    assert set(rows) == {"A", "B"}
    keys = ("delivered", "unique_opens", "human_unique_opens", "total_opens", "unique_clicks", "human_unique_clicks",
            "total_clicks", "unsubscribes", "complaints")
    assert {k: rows["A"][k] for k in keys} == dict(zip(keys, (len(a), 3, 2, 4, 2, 1, 4, 0, 0)))  # a2 is a machine
    assert {k: rows["B"][k] for k in keys} == dict(zip(keys, (len(b) - 1, 1, 1, 1, 0, 0, 0, 1, 1)))
    assert rows["A"]["human_open_rate"] == pytest.approx(2 / len(a)) and rows["A"]["open_rate"] == pytest.approx(3 / len(a))
    assert rows["A"]["ci"]["human_open_rate"] == wilson(2, len(a)) and rows["B"]["ci"]["human_click_rate"] == wilson(0, len(b) - 1)
    total = report["engagement"]["total"]
    assert (total["variant"], total["delivered"], total["unique_opens"], total["human_unique_opens"]) == ("*", 39, 4, 3)
    assert (report["complaints"], report["unsubscribes"], report["human"]) == (1, 1, HUMAN_NOTE)


def test_bounces_are_told_apart_by_path_and_reason(con, home, tmp_path):
    engaged_campaign(con, home, tmp_path)
    bounces = campaign_report(con, "news")["bounces"]
    assert bounces["by_path"] == {"smtp_reply": {"hard": 1}, "bounce_message": {"soft": 1}}
    assert bounces["by_reason"] == [
        {"path": "smtp_reply", "source": "send", "kind": "hard", "reason": "user_unknown", "bounces": 1},
        {"path": "bounce_message", "source": "bounce_mailbox", "kind": "soft", "reason": "mailbox_full", "bounces": 1}]


def test_providers_top_domains_top_links_and_hours_since_send(con, home, tmp_path):
    engaged_campaign(con, home, tmp_path)
    report = campaign_report(con, "news", top=2)
    assert {p["provider"]: p["sent"] for p in report["providers"]} == {"other": 32, "gmail": 8}
    assert [(d["domain"], d["sent"], d["unique_opens"]) for d in report["domains"]] == [("example.com", 20, 4), ("example.org", 12, 0)]
    assert [(r["link"], r["url"], r["clicks"], r["unique_clicks"], r["human_clicks"], r["human_unique_clicks"]) for r in report["links"]] == [
        (0, "https://shop.example/sale", 3, 2, 2, 1), (1, "https://shop.example/about", 1, 1, 0, 0)]
    assert [tuple(h.values()) for h in report["hours"]] == [(0, 2, 2, 1, 0), (1, 1, 0, 1, 0), (2, 1, 2, 1, 2), (3, 1, 0, 1, 0)]


def test_the_markdown_shows_raw_and_human_side_by_side_and_says_what_human_leaves_out(con, home, tmp_path):
    group = engaged_campaign(con, home, tmp_path)
    n = len(group["A"])
    text = report_markdown(campaign_report(con, "news"))
    assert text.startswith("## Campaign News (news) — sent\n")
    for heading in ("Funnel", "Delivery", "Engagement per variant", "Bounces", "Providers", "Top domains", "Top links",
                    "Opens and clicks over time"):
        assert f"\n### {heading}\n" in text
    assert "A/B decision" not in text, "no decision stored, none shown"
    ci = wilson(2, n)
    assert (f"| A | {n} | 3 | 2 | {300 / n:.1f}% | {200 / n:.1f}% ({ci[0] * 100:.1f}–{ci[1] * 100:.1f}%) | 2 | 1 | {200 / n:.1f}% |"
            in text)
    assert "| opened | 4 | 3 | 10.0% |" in text and "| SMTP reply while sending | 1 | 0 | 1 |" in text
    assert "| #0 | https://shop.example/sale | 3 | 2 | 2 | 1 |" in text and "| 2 | 1 | 1 | 2 | 2 |" in text
    assert "Apple Mail Privacy Protection" in text and "link scanners' clicks" in text


def test_the_ab_decision_is_shown_with_its_statistics_inputs_and_holdout(con, home, tmp_path):
    engaged_campaign(con, home, tmp_path)
    variants = [{"variant": "A", "delivered": 19, "successes": 2, "rate": 0.1053, "ci_low": 0.0294, "ci_high": 0.3142},
                {"variant": "B", "delivered": 20, "successes": 9, "rate": 0.45, "ci_low": 0.2582, "ci_high": 0.6579}]
    comparisons = [{"other": "A", "z": 2.41, "p_value": 0.016, "p_adjusted": 0.016}]
    holdout = holdout_lift(Arm("mailed", 39, 11), Arm("holdout", 29, 0), 0.95, ("2026-12-01T12:00Z", "2026-12-01T14:00Z"))
    earlier = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for attempt, outcome in ((1, "wait"), (2, "winner")):
        con.execute("INSERT INTO ab_decisions (campaign_id, attempt, decided_at, metric, method, confidence, outcome, winner, "
                    "leader, final, p_value, probability_best, variants, comparisons, reason, holdout_lift, holdout, "
                    "min_per_variant, fallback, early, remainder_recipients, decided_by) "
                    "VALUES ('news', ?, ?, 'unique_clicks', 'two_proportion_z_pooled_holm', 0.95, ?, ?, "
                    "'B', ?, 0.016, '{\"A\": 0.01, \"B\": 0.99}', ?, ?, 'B beats A at 95% confidence.', 0.312, ?, "
                    "10, 'leader', false, 0, 'test')",
                    [attempt, earlier + timedelta(hours=attempt), outcome, "B" if outcome == "winner" else None,
                     outcome == "winner", json.dumps(variants), json.dumps(comparisons), json.dumps(holdout)])
    report = campaign_report(con, "news")
    ab = report["ab"]
    assert (ab["attempt"], ab["outcome"], ab["winner"], ab["p_value"], ab["holdout_lift"], ab["final"]) == (2, "winner", "B", 0.016, 0.312, True)
    assert (ab["variants"], ab["holdout"]) == (variants, holdout), "JSON columns come back as objects"
    text = report_markdown(report)
    assert "\n### A/B decision\n" in text and "Outcome: winner, winner B. B beats A at 95% confidence." in text
    assert "p value: 0.016" in text and "probability best: A 0.01, B 0.99" in text
    assert "holdout lift: +28.2 points [" in text and "(engaged with any mail: mailed 28.2% of 39, holdout 0.0% of 29; p = " in text
    assert "ci_low" not in text and "e-" not in text, "the stored holdout in words, not as its JSON fields"
    assert "| B | 20 | 9 | 45.0% | 25.8–65.8% |" in text and "| A | 2.41 | 0.016 | 0.016 |" in text
    assert "A/B decision" in report_html(report, charts=False)


def test_a_campaign_without_sends_events_or_decision_reports_zeros_and_leaves_sections_out(con, home, tmp_path):
    planned_campaign(con, home, tmp_path)
    refresh_marts(con, touched=False)
    report = campaign_report(con, "news")
    assert [s["recipients"] for s in report["funnel"]] == [40, 0, 0, 0, 0]
    assert report["engagement"] == {"variants": [], "total": None} and report["ab"] is None
    assert report["bounces"] == {"by_path": {"smtp_reply": {}, "bounce_message": {}}, "by_reason": []}
    assert report["providers"] == report["domains"] == report["links"] == report["hours"] == []
    text = report_markdown(report)
    assert "Engagement per variant" not in text and "Providers" not in text and "no engagement tables" not in text
    json.dumps(report, default=str)
    page = report_html(report)
    assert page.count("<svg") == 1, "the funnel alone has something to draw"
    assert_self_contained(page)


def test_a_warehouse_without_the_marts_still_reports_delivery_and_says_what_to_run(con, home, tmp_path):
    planned_campaign(con, home, tmp_path)
    for mart in ("engagement_by_variant", "engagement_by_provider", "engagement_by_domain", "engagement_by_link", "engagement_by_hour"):
        con.execute(f"DROP TABLE {mart}")
    report = campaign_report(con, "news")
    assert report["marts"]["engagement_by_variant"] is False and report["total"]["audience"] == 40
    assert "no engagement tables yet: run `mailflow aggregate`" in report_markdown(report)


def test_the_html_report_is_one_page_with_five_described_charts_and_no_outside_resource(con, home, tmp_path):
    engaged_campaign(con, home, tmp_path)
    page = report_html(campaign_report(con, "news"))
    assert_self_contained(page)
    titles = re.findall(r"<svg role=\"img\"[^>]*><title>([^<]+)</title><desc>([^<]+)</desc>", page)
    assert [t for t, _ in titles] == ["Delivery funnel", "Variants: human rates with 95% intervals", "Providers", "Top links",
                                      "Opens and clicks over time"]
    assert "Recipients at each stage: audience 40, sent 40, delivered 39, opened 4, clicked 2." in page
    assert page.count("<table>") == 9 and '<a href="https://shop.example/sale" rel="noreferrer noopener">' in page


def test_aggregate_runs_find_the_campaigns_they_touched_and_keys_are_what_prefect_allows(con, home, tmp_path):
    before = datetime.now(UTC) - timedelta(seconds=1)
    engaged_campaign(con, home, tmp_path)
    con.execute("DROP TABLE IF EXISTS touched_campaigns")  # a load without its TEMP table: found from what it wrote
    assert touched_campaigns(con, before) == ["news"]
    assert touched_campaigns(con, datetime.now(UTC) + timedelta(hours=1)) == []
    touched(con, campaigns=["news", "elsewhere"])  # the load's TEMP table: the campaigns it names that exist
    assert touched_campaigns(con, datetime.now(UTC) + timedelta(hours=1)) == ["news"]
    assert artifact_key("news") == "report-news" and artifact_key("Spring_AB 2026!") == "report-spring-ab-2026"


def test_report_writes_json_to_a_file_and_markdown_without_importing_the_chart_stack_or_prefect(con, home, tmp_path):
    engaged_campaign(con, home, tmp_path)
    con.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    out = tmp_path / "news.json"
    run = subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), "report", "news", "--format", "json",
                          "--output", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["report_version"] == 1 and data["funnel"][3] == {"stage": "opened", "recipients": 4, "human": 3}
    check = ("import sys; from mailflow.cli import main; code = main(['--home', sys.argv[1], 'report', 'news']); "
             "sys.exit(code or 3 * any(m in sys.modules for m in ('altair', 'vl_convert', 'prefect')))")
    run = subprocess.run([sys.executable, "-c", check, str(home)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "### Engagement per variant" in run.stdout
    run = subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), "report", "news", "--format", "html",
                          "--output", str(tmp_path / "missing" / "r.html")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "cannot write" in run.stderr


def test_a_remainder_sent_after_the_decision_is_said_to_have_got_the_winner():
    from mailflow.tasks.aggregate.report_text import notes

    variants = [{"variant": "A", "audience": 10, "sent": 10, "held": 0},
                {"variant": "remainder", "audience": 30, "sent": 30, "held": 0}]
    report = {"variants": variants, "ab": {"winner": "A", "final": True}, "marts": {"engagement_by_variant": True}}
    assert "The remainder (30 sent so far) got A, the A/B decision's pick; its rows keep the name `remainder`." in notes(report)
    waiting = report | {"ab": {"winner": None, "final": False}}
    assert not [n for n in notes(waiting) if "remainder" in n], "no pick, nothing said about one"
