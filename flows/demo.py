"""Flow: the whole loop on sample data, against an embedded SMTP receiver that stores a Maildir and the
tracking service on a free loopback port, which a few simulated readers open, click and unsubscribe through."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from mailflow import SAMPLES_DIR, interrupt
from mailflow.flows.aggregate_engagement import aggregate_engagement
from mailflow.flows.ingest import ingest
from mailflow.flows.pick_ab_winner import decide_ab_test
from mailflow.flows.plan_campaign import plan_campaign
from mailflow.flows.process_bounces import process_bounces
from mailflow.flows.send_campaign import send_campaign
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.report import report_from_warehouse
from mailflow.tasks.aggregate.report_page import write_html_report
from mailflow.tasks.demo.answers import ANSWERS, AWAY_DOMAIN, LATE_DOMAIN
from mailflow.tasks.demo.engage import engage
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Receiver
from mailflow.tasks.demo.setup import BOUNCE_MAILDIR, REJECTED_DOMAIN, demo_overrides, secret_in_environment, tracked_at
from mailflow.tasks.track.server import running_service


@flow(name="demo")
def demo(config: str | None = None, overrides: dict | None = None) -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    maildir, bounce_box = settings.home / "maildir", settings.home / BOUNCE_MAILDIR
    # Refuses gone.example at SMTP time; accepts late.example and away.example, then mails a DSN or an
    # auto-reply back to the return path, into the bounce Maildir that process_bounces reads
    with Receiver(maildir=maildir, replies={REJECTED_DOMAIN: USER_UNKNOWN}, answers=ANSWERS, answers_to=bounce_box) as receiver, \
            secret_in_environment(bool(settings.tracking.secret), settings.home):  # never a parameter
        local = demo_overrides(overrides, receiver.port)
        ingested = ingest([str(SAMPLES_DIR / "subscribers.csv")], list_name="newsletter", config=config, overrides=local)
        planned = plan_campaign(str(SAMPLES_DIR / "campaign.yaml"), config, local)
        # The mail links to this service; leaving the block stops it with its event log on disk
        with running_service(load_settings(config, local)) as base_url:
            sent = send_campaign(planned["campaign_id"], config, tracked_at(local, base_url), preflight=True)
            engaged = engage(maildir, base_url)
        bounced = process_bounces(config, local)  # before aggregate: the bounce events are in its load
    aggregated = aggregate_engagement(config, local)
    # The sample campaign's test and holdout take the whole audience: the decision has no remainder to send
    decided = decide_ab_test(planned["campaign_id"], config, local, datetime.now(UTC), False, "flow demo")
    report = report_from_warehouse(settings.warehouse, planned["campaign_id"])  # after the decision: it shows it
    return {
        "ingested": ingested, "planned": planned, "sent": sent, "engaged": engaged.as_dict(), "aggregated": aggregated,
        "ab": decided,  # the A/B decision: its ab_decisions row, or the one that already stood
        "report": report, "html_report": str(write_html_report(settings.home, report)),
        "warehouse": str(settings.warehouse), "maildir": str(maildir), "rejected_domain": REJECTED_DOMAIN,
        "bounces": {"fetched": bounced["fetched"], "kinds": bounced["kinds"], "unmapped": bounced["unmapped"],
                    "maildir": str(bounce_box), "late_domain": LATE_DOMAIN, "away_domain": AWAY_DOMAIN},
    }
