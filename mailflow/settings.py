"""Settings: read once from defaults, mailflow.toml, MAILFLOW_* environment and overrides."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from mailflow.errors import MailflowError

DEFAULTS: dict[str, Any] = {
    "home": "data",
    "smtp": {
        "helo": "mailer.example.com",
        "bounce_domain": "bounces.example.com",
        "timeout": 30.0,
        "pools": {"default": {"relays": ["127.0.0.1:2525"], "connections": 8}},
    },
    "send": {"chunk_size": 1000, "resend_in_doubt": False, "error_budget": 20},
    "dns": {"nameservers": [], "port": 53, "timeout": 5.0},
    "dkim": {"domain": "", "selector": "", "private_key_file": "", "private_key": "", "algorithm": "rsa-sha256",
             "ed25519_selector": "", "ed25519_private_key_file": "", "ed25519_private_key": ""},
    "tracking": {"base_url": "http://127.0.0.1:8080", "secret": ""},
    "bounces": {"imap": {"url": ""}},
}
ENV_PREFIX = "MAILFLOW_"
TLS_MODES = ("none", "starttls", "implicit")
DKIM_ALGORITHMS = ("rsa-sha256", "ed25519-sha256", "both")  # both: an RSA and an Ed25519 signature (RFC 8463)


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    tls: str = "none"

    @classmethod
    def parse(cls, text: str) -> Relay:
        """Parse `[user:pass@]host:port[?tls=starttls|implicit]`."""
        parts = urlsplit("smtp://" + text)
        tls = parse_qs(parts.query).get("tls", ["none"])[0]
        if not parts.hostname or tls not in TLS_MODES:
            raise MailflowError(f"settings: relay {text!r} is not host:port[?tls=starttls|implicit]")
        try:
            port = parts.port or (465 if tls == "implicit" else 25)
        except ValueError:
            raise MailflowError(f"settings: relay {text!r} has a bad port") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            tls=tls,
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Pool:
    name: str
    relays: tuple[Relay, ...]
    connections: int = 8


@dataclass(frozen=True)
class SmtpSettings:
    helo: str
    bounce_domain: str
    timeout: float
    pools: dict[str, Pool]  # a plain dict so settings pickle into send worker processes


@dataclass(frozen=True)
class SendSettings:
    chunk_size: int
    resend_in_doubt: bool  # after a crash, resend messages that were on the wire (may duplicate)
    error_budget: int  # consecutive relay failures (refused session, no connection) that pause a chunk


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
    private_key: str = field(repr=False)
    algorithm: str = "rsa-sha256"  # one of DKIM_ALGORITHMS
    # The Ed25519 key when algorithm is "both" (selector and private_key* are then the RSA key's)
    ed25519_selector: str = ""
    ed25519_private_key_file: str = ""
    ed25519_private_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class TrackingSettings:
    base_url: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    home: Path
    smtp: SmtpSettings
    send: SendSettings
    dns: DnsSettings
    dkim: DkimSettings
    tracking: TrackingSettings
    bounce_imap_url: str

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
    """Merge defaults < config file < environment < overrides into a frozen Settings."""
    merged = _merge(DEFAULTS, _read_config(config))
    merged = _merge(merged, _from_environment(os.environ if environ is None else environ))
    merged = _merge(merged, dict(overrides or {}))
    return _build(merged)


def _read_config(config: str | Path | None) -> dict[str, Any]:
    path = Path(config) if config else Path("mailflow.toml")
    if not path.exists():
        if config:
            raise MailflowError(f"{path}: config file not found")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MailflowError(f"{path}: not valid TOML ({exc})") from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """`MAILFLOW_SMTP__HELO=x` sets smtp.helo; values are read as TOML when they parse."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise MailflowError(f"environment: {name} conflicts with another MAILFLOW_ variable")
        node[keys[-1]] = _env_value(raw)
    return tree


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(tree: dict[str, Any]) -> Settings:
    smtp, send, dkim, tracking = tree["smtp"], tree["send"], tree["dkim"], tree["tracking"]
    pools = {
        name: Pool(
            name=name,
            relays=tuple(Relay.parse(str(r)) for r in _as_list(spec.get("relays", []), f"smtp.pools.{name}.relays")),
            connections=_positive_int(spec.get("connections", 8), f"smtp.pools.{name}.connections"),
        )
        for name, spec in smtp.get("pools", {}).items()
    }
    return Settings(
        home=Path(str(tree["home"])),
        smtp=SmtpSettings(
            helo=str(smtp["helo"]),
            bounce_domain=str(smtp["bounce_domain"]),
            timeout=float(smtp["timeout"]),
            pools=pools,
        ),
        send=SendSettings(
            chunk_size=_positive_int(send["chunk_size"], "send.chunk_size"),
            resend_in_doubt=bool(send["resend_in_doubt"]),
            error_budget=_positive_int(send["error_budget"], "send.error_budget"),
        ),
        dns=DnsSettings(
            nameservers=tuple(str(n) for n in _as_list(tree["dns"]["nameservers"], "dns.nameservers")),
            port=_positive_int(tree["dns"]["port"], "dns.port"),
            timeout=float(tree["dns"]["timeout"]),
        ),
        dkim=_dkim(dkim),
        tracking=TrackingSettings(base_url=str(tracking["base_url"]), secret=str(tracking["secret"])),
        bounce_imap_url=str(tree.get("bounces", {}).get("imap", {}).get("url", "")),
    )


def _dkim(dkim: dict[str, Any]) -> DkimSettings:
    values = {k: str(dkim.get(k, "")) for k in DkimSettings.__dataclass_fields__}
    if values["algorithm"] not in DKIM_ALGORITHMS:
        raise MailflowError(f"settings: dkim.algorithm {values['algorithm']!r} is not one of {', '.join(DKIM_ALGORITHMS)}")
    return DkimSettings(**values)


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return value
    raise MailflowError(f"settings: {key} must be a list of host:port strings")


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MailflowError(f"settings: {key} must be a positive integer, not {value!r}")
    return value
