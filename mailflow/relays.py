"""A relay address as settings write it: `[user:pass@]host:port[?tls=...][&weight=N][&source=IP]`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from mailflow.errors import MailflowError
from mailflow.secret import Secret

TLS_MODES = ("none", "starttls", "implicit", "opportunistic")


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    username: str = ""
    password: Secret = field(default_factory=Secret, compare=False)  # not part of which relay this is
    tls: str = "none"
    weight: int = 1  # share of a pool's messages (or domains) this relay gets
    source: str = ""  # a local IP address to send from (a host with several sending IPs)

    def __post_init__(self) -> None:
        if not isinstance(self.password, Secret):  # Relay(host, port, user, "pass") in tests and tools
            object.__setattr__(self, "password", Secret(self.password))

    @classmethod
    def parse(cls, text: str) -> Relay:
        """Parse `[user:pass@]host:port[?tls=starttls|implicit|opportunistic][&weight=N][&source=IP]`."""
        parts = urlsplit("smtp://" + text)
        shown = redact(text)  # errors end up in logs and in Prefect's database
        query = parse_qs(parts.query)
        tls = query.get("tls", ["none"])[0]
        weight = query.get("weight", ["1"])[0]
        source = query.get("source", [""])[0]
        if not parts.hostname or tls not in TLS_MODES or not weight.isdigit() or int(weight) < 1 \
                or (source and not is_ip(source)):
            raise MailflowError(f"settings: relay {shown!r} is not "
                                "host:port[?tls=starttls|implicit|opportunistic][&weight=N][&source=IP]")
        try:
            port = parts.port or (465 if tls == "implicit" else 25)
        except ValueError:
            raise MailflowError(f"settings: relay {shown!r} has a bad port") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username or ""),
            password=Secret(unquote(parts.password or "")),
            tls=tls,
            weight=int(weight),
            source=source,
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def redact(text: str) -> str:
    """The relay as written, with its password (if any) replaced by ***."""
    netloc = urlsplit("smtp://" + text).netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return text.replace(netloc, f"{userinfo.partition(':')[0]}:***@{hostport}", 1)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
