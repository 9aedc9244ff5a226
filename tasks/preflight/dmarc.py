"""DMARC (RFC 7489): the policy record, the organisational domain and identifier alignment, as plain functions."""

from __future__ import annotations

from dataclasses import dataclass

# The organisational domain is the registrable domain: one label under its public suffix (RFC 7489 §3.2).
# Instead of the whole Public Suffix List (fetched over the network, or a distribution's copy that may be
# missing) a small rule: the suffix is the last label, or the last two when they are one of these
# well-known second-level registries. Wrong only for rarer multi-label suffixes, where it errs towards
# a shorter organisational domain (relaxed alignment then passes where a receiver's would too, or fails
# alike when the domains differ below it).
SECOND_LEVEL = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "gr.jp", "ad.jp", "ed.jp", "lg.jp",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "net.nz", "co.za", "org.za",
    "com.br", "net.br", "org.br", "com.cn", "net.cn", "org.cn", "com.tw", "com.hk", "com.sg", "com.my",
    "co.kr", "or.kr", "co.in", "net.in", "org.in", "com.mx", "com.ar", "com.tr", "co.il", "co.id", "com.ua",
})


def organisational_domain(domain: str) -> str:
    labels = domain.lower().removesuffix(".").split(".")
    keep = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def aligned(a: str, b: str, mode: str) -> bool:
    """Strict ("s"): the same domain; relaxed ("r"): the same organisational domain."""
    a, b = a.lower().removesuffix("."), b.lower().removesuffix(".")
    return a == b if mode == "s" else organisational_domain(a) == organisational_domain(b)


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where it was found: _dmarc.<this>
    policy: str  # none | quarantine | reject
    subdomain_policy: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


class BadRecord(ValueError):
    """The TXT text is not a usable DMARC record; the message says why."""


def parse_record(domain: str, text: str) -> DmarcRecord:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if part.strip():
            name, sep, value = part.partition("=")
            if not sep:
                raise BadRecord(f"{part.strip()!r} is not a tag=value pair")
            tags.setdefault(name.strip().lower(), value.strip())
    if not text.strip().lower().startswith("v=dmarc1") or tags.get("v", "").upper() != "DMARC1":
        raise BadRecord("it does not start with v=DMARC1")
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        raise BadRecord("p= must be none, quarantine or reject" if policy else "it has no p= tag")
    modes = {key: tags.get(key, "r").lower() for key in ("adkim", "aspf")}
    for key, mode in modes.items():
        if mode not in ("r", "s"):
            raise BadRecord(f"{key}= must be r or s, not {mode!r}")
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        raise BadRecord("pct= must be a number from 0 to 100") from None
    return DmarcRecord(domain, policy, tags.get("sp", policy).lower(), modes["adkim"], modes["aspf"], pct)


def dmarc_texts(texts: list[str]) -> list[str]:
    """The TXT texts of _dmarc.<domain> that claim to be DMARC (others there are ignored, §6.6.3)."""
    return [t for t in texts if t.strip().lower().startswith("v=dmarc1")]
