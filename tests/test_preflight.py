"""`mailflow preflight` and the preflight before `send`: a DNS zone on loopback, real SpamAssassin, a real SMTP receiver."""

from __future__ import annotations

import json

import pytest

from mailflow.cli import main
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.files.lifecycle import ABORTED, state_of
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.preflight.preflight import run_preflight
from tests.support.dnsstub import DnsStub, txt
from tests.support.preflight import good_zone, pem_of, plan_news, preflight_settings, write_config

pytestmark = pytest.mark.integration
SPAMMY = ("<html><body><p>BUY VIAGRA NOW!!! 100% FREE!!! Make money fast, work from home, lose weight, "
          "eliminate bad credit, click here to claim your prize, limited time offer, risk free, guaranteed!</p>"
          "<p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p></body></html>")


def templated(tmp_path, name: str, html: str, subject: str = "News") -> CampaignSpec:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / f"{name}.html.j2").write_text(html)
    return CampaignSpec(name=name, campaign_id=name, from_addr="News <news@example.com>", subject=subject, template=name)


@pytest.fixture
def zone_port(rsa_private):
    with DnsStub(good_zone(rsa_private)) as stub:
        yield stub.port


def test_a_correct_setup_passes_every_check_with_real_spamassassin(tmp_path, rsa_private, zone_port):
    settings = preflight_settings(tmp_path / "home", zone_port, rsa_private)
    spec, checks = run_preflight(settings, plan_news(settings.home))
    assert [(c.check, c.status) for c in checks if c.status != "PASS"] == []
    assert [c.check for c in checks] == ["spf", "dkim", "dmarc", "alignment", "bounce_mx", "tracking_host",
                                         "unsubscribe", "links", "size", "images", "spam"]


def test_spammy_content_scores_over_the_threshold(tmp_path, rsa_private, zone_port):
    spec = templated(tmp_path, "spammy", SPAMMY, subject="FREE VIAGRA!!! WIN CASH NOW")
    settings = preflight_settings(tmp_path / "home", zone_port, rsa_private,
                                  preflight={"skip": ["spf", "dkim", "dmarc", "alignment", "bounce_mx", "tracking_host"]})
    settings = type(settings)(**{**settings.__dict__, "templates_dir": tmp_path / "templates"})
    _, checks = run_preflight(settings, plan_news(settings.home, spec))
    spam = next(c for c in checks if c.check == "spam")
    assert spam.status == "FAIL" and "threshold 5" in spam.detail and "DRUG" in spam.detail
    skipped = [c for c in checks if c.detail == "not checked: listed in preflight.skip"]
    assert len(skipped) == 6 and {c.status for c in skipped} == {"WARN"}


@pytest.mark.parametrize(("html", "check", "says"), [
    ('<p>Read <a href="javascript:alert(document.cookie)">this</a>. {{ unsubscribe_url }}</p>', "links", "javascript:"),
    ("<p>" + "A long newsletter paragraph with many words in it. " * 2600 + "{{ unsubscribe_url }}</p>", "size",
     "Gmail clips"),
])
def test_the_rendered_sample_is_checked_through_the_real_compose_path(tmp_path, rsa_private, zone_port, html, check, says):
    spec = templated(tmp_path, "t", html)
    settings = preflight_settings(tmp_path / "home", zone_port, rsa_private, preflight={"skip": ["spam"]})
    settings = type(settings)(**{**settings.__dict__, "templates_dir": tmp_path / "templates"})
    _, checks = run_preflight(settings, plan_news(settings.home, spec))
    found = next(c for c in checks if c.check == check)
    assert found.status == "FAIL" and says in found.detail


def cli(capsys, tmp_path, *args):
    code = main(["--home", str(tmp_path / "home"), "--config", str(tmp_path / "mailflow.toml"), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def secrets(monkeypatch, rsa_private):
    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")
    monkeypatch.setenv("MAILFLOW_DKIM__PRIVATE_KEY", pem_of(rsa_private))


def test_the_command_prints_a_table_json_and_exit_codes(tmp_path, capsys, zone_port, secrets):
    write_config(tmp_path / "mailflow.toml", zone_port, 2525, skip=["spam"])
    plan_news(tmp_path / "home")
    code, out, _ = cli(capsys, tmp_path, "preflight", "news")
    assert code == 0 and out.startswith("preflight of campaign news: 10 pass, 1 warn, 0 fail")
    assert "  PASS  spf            SPF of bounces.example.com permits 192.0.2.10" in out
    code, out, _ = cli(capsys, tmp_path, "preflight", "news", "--json")
    rows = json.loads(out)
    assert code == 0 and set(rows[0]) == {"check", "status", "detail", "fix"} and len(rows) == 11

    campaign_file = tmp_path / "c.yaml"
    campaign_file.write_text("name: fresh\nfrom: News <news@example.com>\ntemplate: newsletter\nsubject: Hi\n")
    code, out, _ = cli(capsys, tmp_path, "preflight", str(campaign_file))
    assert code == 0 and out.startswith("preflight of campaign fresh:")

    code, _, err = cli(capsys, tmp_path, "preflight", "never-planned")
    assert code == 2 and err.count("\n") == 1 and "never-planned" in err


def test_a_failing_check_stops_the_send_a_warning_does_not_and_skip_preflight_skips(
        prefect_harness, tmp_path, capsys, rsa_private, secrets):
    zone = good_zone(rsa_private)
    del zone["_dmarc.example.com"]
    with DnsStub(zone) as stub, Receiver(record=True) as rx:
        write_config(tmp_path / "mailflow.toml", stub.port, rx.port, skip=["spam"])
        plan_news(tmp_path / "home")
        code, out, err = cli(capsys, tmp_path, "preflight", "news")
        assert code == 1 and "  FAIL  dmarc" in out and "fix: publish a TXT record at _dmarc.example.com" in out
        assert err.splitlines()[-1] == "mailflow: preflight of campaign 'news': 1 check(s) FAIL (dmarc)"
        code, _, err = cli(capsys, tmp_path, "send", "news", "--no-progress")
        assert code == 1 and "aborted, preflight failed: dmarc: no DMARC record for example.com" in err.splitlines()[-1]
        assert rx.received == [], "no message left"
        assert state_of(tmp_path / "home", "news") == ABORTED

        stub.zone["_dmarc.example.com"] = {"TXT": [txt("v=DMARC1; p=none")]}  # fixed, if only to p=none: a WARN
        code, out, err = cli(capsys, tmp_path, "send", "news", "--no-progress")
        assert code == 0, err
        assert "preflight WARN: dmarc: p=none at _dmarc.example.com" in out and "sent: 3 delivered" in out
        assert len(rx.received) == 3

        del stub.zone["_dmarc.example.com"]
        plan_news(tmp_path / "home", CampaignSpec(name="Other", campaign_id="other", from_addr="News <news@example.com>",
                                                  subject="Hi", template="newsletter"))
        code, out, err = cli(capsys, tmp_path, "send", "other", "--no-progress", "--skip-preflight")
        assert code == 0, err
        assert len(rx.received) == 6 and "\nsent: 3 delivered" in "\n" + out and "preflight" not in out
