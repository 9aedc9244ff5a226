"""Flow: the whole loop on sample data, against an embedded SMTP receiver that stores a Maildir and the
tracking service on a free loopback port, which a few simulated readers open, click and unsubscribe through."""

from __future__ import annotations

from prefect import flow

from mailflow import SAMPLES_DIR, interrupt
from mailflow.flows.aggregate_engagement import aggregate_engagement
from mailflow.flows.ingest import ingest
from mailflow.flows.plan_campaign import plan_campaign
from mailflow.flows.send_campaign import send_campaign
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.report import report_from_warehouse
from mailflow.tasks.aggregate.report_page import write_html_report
from mailflow.tasks.demo.engage import engage
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Receiver
from mailflow.tasks.demo.setup import REJECTED_DOMAIN, demo_overrides, secret_in_environment, tracked_at
from mailflow.tasks.track.server import running_service


@flow(name="demo")
def demo(config: str | None = None, overrides: dict | None = None) -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    maildir = settings.home / "maildir"
    with Receiver(maildir=maildir, replies={REJECTED_DOMAIN: USER_UNKNOWN}) as receiver, \
            secret_in_environment(bool(settings.tracking.secret), settings.home):  # never a parameter
        local = demo_overrides(overrides, receiver.port)
        ingested = ingest([str(SAMPLES_DIR / "subscribers.csv")], list_name="newsletter", config=config, overrides=local)
        planned = plan_campaign(str(SAMPLES_DIR / "campaign.yaml"), config, local)
        # The mail links to this service; leaving the block stops it with its event log on disk
        with running_service(load_settings(config, local)) as base_url:
            sent = send_campaign(planned["campaign_id"], config, tracked_at(local, base_url))
            engaged = engage(maildir, base_url)
    aggregated = aggregate_engagement(config, local)
    report = report_from_warehouse(settings.warehouse, planned["campaign_id"])
    return {
        "ingested": ingested, "planned": planned, "sent": sent, "engaged": engaged.as_dict(), "aggregated": aggregated,
        "report": report, "html_report": str(write_html_report(settings.home, report)),
        "warehouse": str(settings.warehouse), "maildir": str(maildir), "rejected_domain": REJECTED_DOMAIN,
    }
