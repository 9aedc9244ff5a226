"""A deliverability setup for preflight tests: a DNS zone that is right for it, its settings and a planned campaign."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mailflow.settings import Settings, load_settings
from mailflow.tasks.compose.dkim import dns_record, load_key
from mailflow.tasks.plan.campaign import CampaignSpec
from tests.support.campaign import write_plan
from tests.support.dnsstub import txt

SOURCE_IP = "192.0.2.10"  # where the relay's mail leaves from (preflight.source_ips)
TRACKING_HOST, TRACKING_IP = "t.example.com", "93.184.215.14"
SELECTOR = "mf1"
SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="News <news@example.com>",
                    subject="Our news for {{ subscriber.first_name | default('you') }}", template="newsletter")


def pem_of(private_key) -> str:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


def good_zone(private_key) -> dict[str, dict]:
    """Everything right: SPF (through an include) permits the source, the key is published, DMARC quarantines,
    the bounce domain has an MX and the tracking host an address."""
    return {
        "bounces.example.com": {"TXT": [txt("v=spf1 include:_spf.example.com -all")], "MX": ["10 mx.example.com."]},
        "_spf.example.com": {"TXT": [txt(f"v=spf1 ip4:{SOURCE_IP} -all")]},
        "mx.example.com": {"A": ["93.184.215.20"]},
        f"{SELECTOR}._domainkey.example.com": {"TXT": [txt(dns_record(load_key("example.com", SELECTOR, pem_of(private_key))))]},
        "_dmarc.example.com": {"TXT": [txt("v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com")]},
        TRACKING_HOST: {"A": [TRACKING_IP]},
    }


def preflight_overrides(home: Path, dns_port: int, relay_port: int = 2525, **sections) -> dict:
    base = {"home": str(home), "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": 2.0},
            "smtp": {"bounce_domain": "bounces.example.com", "pools": {"default": {"relays": [f"127.0.0.1:{relay_port}"]}}},
            "dkim": {"domain": "example.com", "selector": SELECTOR},
            "tracking": {"base_url": f"https://{TRACKING_HOST}"}, "preflight": {"source_ips": [SOURCE_IP]}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


def preflight_settings(home: Path, dns_port: int, private_key, **sections) -> Settings:
    return load_settings(overrides=preflight_overrides(home, dns_port, **sections),
                         environ={"MAILFLOW_TRACKING__SECRET": "test-secret", "MAILFLOW_DKIM__PRIVATE_KEY": pem_of(private_key)})


def plan_news(home: Path, spec: CampaignSpec = SPEC, recipients: int = 3) -> str:
    write_plan(home, spec, [([f"r{i}@example.org" for i in range(recipients)], "A", None, False)])
    return spec.campaign_id


def write_config(path: Path, dns_port: int, relay_port: int, **preflight) -> Path:
    """The same settings as a mailflow.toml, for commands (the secrets come from the environment)."""
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in preflight.items())
    path.write_text(f"""[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 2.0
[smtp]
bounce_domain = "bounces.example.com"
[smtp.pools.default]
relays = ["127.0.0.1:{relay_port}"]
[dkim]
domain = "example.com"
selector = "{SELECTOR}"
[tracking]
base_url = "https://{TRACKING_HOST}"
[preflight]
source_ips = ["{SOURCE_IP}"]
{extra}""")
    return path
