"""Settings: read once from defaults, mailflow.toml, MAILFLOW_* environment and overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from mailflow.errors import MailflowError
from mailflow.providers import DEFAULT_LIMITS, SHAPING_MODES, ProviderLimits, provider_table
from mailflow.relays import Relay
from mailflow.secret import Secret
from mailflow.setting_values import (
    as_list,
    ip,
    non_negative,
    non_negative_int,
    one_of,
    positive_int,
)
from mailflow.settings_aggregate import DEFAULTS as AGGREGATE
from mailflow.settings_aggregate import AggregateSettings, aggregate_settings
from mailflow.settings_engagement import DEFAULTS as ENGAGEMENT
from mailflow.settings_engagement import EngagementSettings, engagement_settings
from mailflow.settings_preflight import DEFAULTS as PREFLIGHT_DEFAULTS
from mailflow.settings_preflight import PreflightSettings, preflight_settings
from mailflow.settings_studio import DEFAULTS as STUDIO_DEFAULTS
from mailflow.settings_studio import StudioSettings, refuse_secret_in_file, studio_settings
from mailflow.settings_tracking import DEFAULTS as TRACKING_DEFAULTS
from mailflow.settings_tracking import TrackingSettings, tracking_settings
from mailflow.settings_warmup import DEFAULTS as WARMUP_DEFAULTS
from mailflow.settings_warmup import WarmupSettings, warmup_settings
from mailflow.settings_webhooks import DEFAULTS as WEBHOOK_DEFAULTS
from mailflow.settings_webhooks import WebhookSettings, webhook_settings
from mailflow.sources import SECRET_KEYS, from_environment, merge, read_config, read_secret, refuse_secrets

DEFAULTS: dict[str, Any] = {
    "home": "data",
    "templates_dir": "templates",  # the user's campaign templates (relative to the working directory), then the built-ins
    "segments_dir": "sql/segments",  # the user's saved segments (relative to the working directory), then the built-ins
    "smtp": {
        "helo": "mailer.example.com",
        "bounce_domain": "bounces.example.com",
        "timeout": 30.0,
        "pools": {"default": {"relays": ["127.0.0.1:2525"], "connections": 8}},
        "mx_port": 25,
        "mx_connections": 64,
        "mx_sources": [],
        "allow_private_mx": False,
        "mx_shaping": "providers",
    },
    "send": {"chunk_size": 1000, "resend_in_doubt": False, "error_budget": 20, "rate": 0.0, "rate_batch": 100,
             "retry_first": 300, "retry_max_interval": 14400, "give_up_after": 259200,
             "relay_failures": 3, "relay_cooldown": 60, "interrupt_grace": 10.0, "suppression_refresh": 2.0},
    "shaping": {},
    "dns": {"nameservers": [], "port": 53, "timeout": 5.0},
    "dkim": {"domain": "", "selector": "", "private_key_file": "", "private_key": "", "algorithm": "rsa-sha256",
             "ed25519_selector": "", "ed25519_private_key_file": "", "ed25519_private_key": ""},
    "tracking": TRACKING_DEFAULTS,
    "bounces": {"imap": {"url": "", "password": "", "processed_folder": "Processed"}, "maildir": "", "soft_limit": 3, "soft_window_days": 30},
    "engagement": ENGAGEMENT,
    "aggregate": AGGREGATE,
    "plan": {"frequency_cap": 0, "frequency_days": 7, "render_sample": 5, "memory_limit": "3GB"},
    "webhooks": WEBHOOK_DEFAULTS,
    "warmup": WARMUP_DEFAULTS,
    "studio": STUDIO_DEFAULTS,
    "preflight": PREFLIGHT_DEFAULTS,
}
DKIM_ALGORITHMS = ("rsa-sha256", "ed25519-sha256", "both")  # both: an RSA and an Ed25519 signature (RFC 8463)


@dataclass(frozen=True)
class Pool:
    name: str
    relays: tuple[Relay, ...]
    connections: int = 8  # per relay
    choose: str = "message"  # "message": weighted pick per message; "domain": each domain sticks to one relay
    max_messages: int = 1000  # per connection, then it is recycled
    # "none": a relay shapes for itself, so the pool sends as fast as the global rate and its
    # connections allow; "providers": the per-provider limits of `limits` (politeness toward MXes).
    shaping: str = "none"
    limits: dict[str, ProviderLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))  # [shaping], then [smtp.pools.NAME.providers]


@dataclass(frozen=True)
class SmtpSettings:
    helo: str
    bounce_domain: str
    timeout: float
    pools: dict[str, Pool]  # a plain dict so settings pickle into send worker processes
    mx_port: int = 25  # `transport: mx` connects to this port of each exchanger
    mx_connections: int = 64  # `transport: mx`: concurrent sessions per sending process (and per exchanger)
    allow_private_mx: bool = False  # an MX on a loopback/private address is refused unless this is set (tests)
    mx_sources: tuple[str, ...] = ()  # `transport: mx`: local IPs to send from, one per recipient domain
    mx_shaping: str = "providers"  # `transport: mx`: the [shaping] provider limits apply ("none": no provider limits)


@dataclass(frozen=True)
class SendSettings:
    chunk_size: int
    resend_in_doubt: bool  # after a crash, resend messages that were on the wire (may duplicate)
    error_budget: int  # consecutive relay failures (refused session, no connection) that pause a chunk
    rate: float = 0.0  # messages/s over all senders, via a Prefect global rate limit (0: no global limit)
    rate_batch: int = 100  # slots taken from the global limit per API call
    retry_first: float = 300.0  # seconds before a deferred recipient's first retry; doubles each time
    retry_max_interval: float = 14400.0  # the doubling stops here
    give_up_after: float = 259200.0  # deferred this long after its first attempt: bounced (expired)
    relay_failures: int = 3  # consecutive connection failures that take a relay out of rotation
    relay_cooldown: float = 60.0  # seconds a relay stays out of rotation
    interrupt_grace: float = 10.0  # after Ctrl-C, seconds for messages on the wire to finish; then exit anyway
    suppression_refresh: float = 2.0  # seconds between reads of the suppression logs: how soon an unsubscribe stops mail


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...]  # empty: the system's resolver (/etc/resolv.conf)
    port: int
    timeout: float


@dataclass(frozen=True)
class DkimSettings:
    domain: str
    selector: str
    private_key_file: str
    private_key: Secret
    algorithm: str = "rsa-sha256"  # one of DKIM_ALGORITHMS
    # The Ed25519 key when algorithm is "both" (selector and private_key* are then the RSA key's)
    ed25519_selector: str = ""
    ed25519_private_key_file: str = ""
    ed25519_private_key: Secret = field(default_factory=Secret)


@dataclass(frozen=True)
class PlanSettings:
    frequency_cap: int = 0  # at most this many campaigns per subscriber within frequency_days (0: no cap)
    frequency_days: int = 7
    render_sample: int = 5  # recipients of each variant rendered at plan time: a broken template fails the plan
    memory_limit: str = "3GB"  # DuckDB's while planning (spills to disk beyond it): 10M subscribers fit in it


@dataclass(frozen=True)
class Settings:
    home: Path
    smtp: SmtpSettings
    send: SendSettings
    dns: DnsSettings
    dkim: DkimSettings
    tracking: TrackingSettings
    bounce_imap_url: str
    bounce_imap_password: Secret = field(default_factory=Secret)  # MAILFLOW_BOUNCES__IMAP__PASSWORD
    bounce_imap_processed_folder: str = "Processed"  # fetched bounce mail is moved here; "" leaves it in place
    bounce_maildir: str = ""  # a local Maildir of bounce mail (relative: to the home); "" reads none
    soft_bounce_limit: int = 3  # soft bounces within the window that suppress an address
    soft_bounce_window_days: int = 30
    shaping: dict[str, ProviderLimits] = field(default_factory=dict)  # per provider group, per sending process
    templates_dir: Path = Path("templates")  # campaign templates found here first, then the built-in ones
    segments_dir: Path = Path("sql/segments")  # saved segments found here first, then the built-in ones
    plan: PlanSettings = field(default_factory=PlanSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)  # provider event webhooks (settings_webhooks.py)
    engagement: EngagementSettings = field(default_factory=EngagementSettings)  # [engagement]: machine opens and clicks
    warmup: WarmupSettings = field(default_factory=WarmupSettings)  # [warmup]: daily caps of new pools (settings_warmup.py)
    studio: StudioSettings = field(default_factory=StudioSettings)  # [studio]: the web studio's logins and sessions
    preflight: PreflightSettings = field(default_factory=PreflightSettings)  # [preflight]: deliverability checks
    aggregate: AggregateSettings = field(default_factory=AggregateSettings)  # [aggregate]: the load's memory

    @property
    def warehouse(self) -> Path:
        return self.home / "mailflow.duckdb"

    def pool(self, name: str) -> Pool:
        try:
            return self.smtp.pools[name]
        except KeyError:
            known = ", ".join(sorted(self.smtp.pools))
            raise MailflowError(f"settings: no SMTP pool named {name!r} (known: {known})") from None


def load_settings(
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults < config file < environment < overrides into a frozen Settings.

    Secrets come from the config file or the environment only: `overrides` (what flows take as
    parameters, which Prefect stores) carrying one are refused. A process that receives the
    settings pickled reads the secrets again from the config file and its own environment.
    """
    refuse_secrets(dict(overrides or {}))
    file_tree = read_config(config)
    refuse_secret_in_file(file_tree)
    merged = merge(DEFAULTS, file_tree)
    merged = merge(merged, from_environment(os.environ if environ is None else environ))
    merged = merge(merged, dict(overrides or {}))
    return _build(merged, str(config) if config else None)


def _build(tree: dict[str, Any], config: str | None) -> Settings:
    smtp, send, dkim, tracking = tree["smtp"], tree["send"], tree["dkim"], tree["tracking"]

    def secret(value: Any, *keys: str | int) -> Secret:
        return Secret(str(value), partial(read_secret, config, keys))

    def relays(name: str, spec: dict[str, Any]) -> tuple[Relay, ...]:
        parsed = [Relay.parse(str(r)) for r in as_list(spec.get("relays", []), f"smtp.pools.{name}.relays")]
        return tuple(replace(r, password=secret(r.password.reveal(), "smtp", "pools", name, "relays", i))
                     if r.password else r for i, r in enumerate(parsed))

    shaping = provider_table(tree.get("shaping", {}), DEFAULT_LIMITS, "shaping")
    pools = {
        name: Pool(
            name=name,
            relays=relays(name, spec),
            connections=positive_int(spec.get("connections", 8), f"smtp.pools.{name}.connections"),
            choose=one_of(spec.get("choose", "message"), ("message", "domain"), f"smtp.pools.{name}.choose"),
            max_messages=positive_int(spec.get("max_messages", 1000), f"smtp.pools.{name}.max_messages"),
            # Per-provider overrides for the pool mean it is shaped by provider unless it says otherwise.
            shaping=one_of(spec.get("shaping", "providers" if spec.get("providers") else "none"), SHAPING_MODES,
                           f"smtp.pools.{name}.shaping"),
            limits=provider_table(spec.get("providers", {}), shaping, f"smtp.pools.{name}.providers"),
        )
        for name, spec in smtp.get("pools", {}).items()
    }
    return Settings(
        home=Path(str(tree["home"])),
        templates_dir=Path(str(tree["templates_dir"])),
        segments_dir=Path(str(tree["segments_dir"])),
        smtp=SmtpSettings(
            helo=str(smtp["helo"]),
            bounce_domain=str(smtp["bounce_domain"]),
            timeout=float(smtp["timeout"]),
            pools=pools,
            mx_port=positive_int(smtp["mx_port"], "smtp.mx_port"),
            mx_connections=positive_int(smtp["mx_connections"], "smtp.mx_connections"),
            allow_private_mx=bool(smtp["allow_private_mx"]),
            mx_sources=tuple(ip(str(a), "smtp.mx_sources") for a in as_list(smtp["mx_sources"], "smtp.mx_sources")),
            mx_shaping=one_of(smtp["mx_shaping"], SHAPING_MODES, "smtp.mx_shaping"),
        ),
        send=SendSettings(
            chunk_size=positive_int(send["chunk_size"], "send.chunk_size"),
            resend_in_doubt=bool(send["resend_in_doubt"]),
            error_budget=positive_int(send["error_budget"], "send.error_budget"),
            rate=non_negative(send["rate"], "send.rate"),
            rate_batch=positive_int(send["rate_batch"], "send.rate_batch"),
            retry_first=non_negative(send["retry_first"], "send.retry_first"),
            retry_max_interval=non_negative(send["retry_max_interval"], "send.retry_max_interval"),
            give_up_after=non_negative(send["give_up_after"], "send.give_up_after"),
            relay_failures=positive_int(send["relay_failures"], "send.relay_failures"),
            relay_cooldown=non_negative(send["relay_cooldown"], "send.relay_cooldown"),
            interrupt_grace=non_negative(send["interrupt_grace"], "send.interrupt_grace"),
            suppression_refresh=non_negative(send["suppression_refresh"], "send.suppression_refresh"),
        ),
        dns=DnsSettings(
            nameservers=tuple(str(n) for n in as_list(tree["dns"]["nameservers"], "dns.nameservers")),
            port=positive_int(tree["dns"]["port"], "dns.port"),
            timeout=float(tree["dns"]["timeout"]),
        ),
        dkim=_dkim(dkim, secret),
        tracking=tracking_settings(tracking, secret),
        bounce_imap_url=str(tree["bounces"]["imap"]["url"]),
        bounce_imap_password=secret(tree["bounces"]["imap"]["password"], "bounces", "imap", "password"),
        bounce_imap_processed_folder=str(tree["bounces"]["imap"]["processed_folder"]),
        bounce_maildir=str(tree["bounces"]["maildir"]),
        soft_bounce_limit=positive_int(tree["bounces"]["soft_limit"], "bounces.soft_limit"),
        soft_bounce_window_days=positive_int(tree["bounces"]["soft_window_days"], "bounces.soft_window_days"),
        shaping=shaping,
        plan=PlanSettings(
            frequency_cap=non_negative_int(tree["plan"]["frequency_cap"], "plan.frequency_cap"),
            frequency_days=positive_int(tree["plan"]["frequency_days"], "plan.frequency_days"),
            render_sample=non_negative_int(tree["plan"]["render_sample"], "plan.render_sample"),
            memory_limit=str(tree["plan"]["memory_limit"]),
        ),
        webhooks=webhook_settings(tree["webhooks"], secret),
        engagement=engagement_settings(tree["engagement"]),
        warmup=warmup_settings(tree["warmup"], {*pools, "mx"}),
        studio=studio_settings(tree["studio"], secret),
        preflight=preflight_settings(tree["preflight"]),
        aggregate=aggregate_settings(tree["aggregate"]),
    )


def _dkim(dkim: dict[str, Any], secret) -> DkimSettings:
    values: dict[str, Any] = {k: str(dkim.get(k, "")) for k in DkimSettings.__dataclass_fields__}
    if values["algorithm"] not in DKIM_ALGORITHMS:
        raise MailflowError(f"settings: dkim.algorithm {values['algorithm']!r} is not one of {', '.join(DKIM_ALGORITHMS)}")
    for keys in SECRET_KEYS:
        if keys[0] == "dkim":
            values[keys[1]] = secret(values[keys[1]], *keys)
    return DkimSettings(**values)

