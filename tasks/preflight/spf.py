"""SPF (RFC 7208): check_host() for one sending IP, within the limits of 10 DNS-querying terms and 2 void lookups."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mailflow.tasks.preflight.lookup import DnsTrouble, Lookup

PASS, FAIL, SOFTFAIL, NEUTRAL, NONE, PERMERROR, TEMPERROR = (
    "pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")
QUALIFIERS = {"+": PASS, "-": FAIL, "~": SOFTFAIL, "?": NEUTRAL}
MAX_LOOKUPS = 10  # §4.6.4: include, a, mx, ptr, exists and redirect each count
MAX_VOID = 2  # §4.6.4: lookups answered NXDOMAIN or with no records
MAX_NAMES = 10  # §4.6.4: MX exchanges per mx term, PTR names per ptr term
_MECHANISM = re.compile(r"([+?~-]?)(all|include|a|mx|ptr|ip4|ip6|exists)(?=$|[:/])(.*)", re.IGNORECASE)
_MODIFIER = re.compile(r"([a-z][a-z0-9_.-]*)=(.*)", re.IGNORECASE)
_MACRO = re.compile(r"%(?:\{([a-z])(\d*)(r?)([-.+,/_=]*)\}|(.))", re.IGNORECASE)


class PermError(Exception):
    """The record cannot be evaluated (a syntax error, too many lookups): receivers treat it as no SPF at all."""


@dataclass
class SpfResult:
    result: str  # pass | fail | softfail | neutral | none | permerror | temperror
    detail: str  # the matching term, or why there is no verdict
    lookups: int = 0
    notes: list[str] = field(default_factory=list)  # advice that does not change the result (ptr in use)


@dataclass
class _Count:
    lookups: int = 0
    void: int = 0
    notes: list[str] = field(default_factory=list)


async def check_host(ip: str, domain: str, lookup: Lookup, sender: str = "", helo: str = "") -> SpfResult:
    """The SPF verdict for mail from `ip` whose envelope sender is `sender` (default postmaster@domain)."""
    count = _Count()
    sender = sender or f"postmaster@{domain}"
    try:
        result, detail = await _evaluate(ipaddress.ip_address(ip), domain.lower().removesuffix("."), sender, helo,
                                         lookup, count, top=True)
    except PermError as exc:
        result, detail = PERMERROR, str(exc)
    except DnsTrouble as exc:
        result, detail = TEMPERROR, str(exc)
    return SpfResult(result, detail, count.lookups, count.notes)


async def spf_record(domain: str, lookup: Lookup) -> str | None:
    """The domain's one `v=spf1` record, None when there is none; two or more is a PermError (§4.5)."""
    records = [t for t in await lookup.records(domain, "TXT") if re.match(r"v=spf1(?: |$)", t, re.IGNORECASE)]
    if len(records) > 1:
        raise PermError(f"{domain} publishes {len(records)} SPF records; it must publish one")
    return records[0] if records else None


async def _evaluate(ip, domain: str, sender: str, helo: str, lookup: Lookup, count: _Count, top: bool) -> tuple[str, str]:
    record = await spf_record(domain, lookup)
    if record is None:
        if top:
            return NONE, f"{domain} publishes no SPF record"
        raise PermError(f"{domain} (included or redirected to) publishes no SPF record")
    terms = record.split()[1:]
    redirect = None
    modifiers = set()
    for term in terms:  # §4.6: the whole record must parse before any term is evaluated
        if _MECHANISM.fullmatch(term):
            continue
        found = _MODIFIER.fullmatch(term)
        if not found:
            raise PermError(f"{domain}: {term!r} is not an SPF mechanism or modifier")
        name = found.group(1).lower()
        if name in modifiers and name in ("redirect", "exp"):
            raise PermError(f"{domain}: more than one {name}= modifier")
        modifiers.add(name)
        if name == "redirect":
            redirect = found.group(2)
    ctx = (ip, domain, sender, helo)
    for term in terms:
        found = _MECHANISM.fullmatch(term)
        if not found:
            continue
        qualifier, mechanism, argument = found.group(1) or "+", found.group(2).lower(), found.group(3)
        if mechanism == "all" and redirect is not None:
            redirect = None  # §6.1: redirect is ignored when the record has "all"
        if await _matches(mechanism, argument, ctx, lookup, count):
            return QUALIFIERS[qualifier], f"{domain}: {term}"
    if redirect is not None:
        target = expand(redirect, ctx)
        _spend(count, f"redirect={target}")
        return await _evaluate(ip, target, sender, helo, lookup, count, top=False)
    return NEUTRAL, f"{domain}: no term matched (the default is neutral)"


def _spend(count: _Count, term: str) -> None:
    count.lookups += 1
    if count.lookups > MAX_LOOKUPS:
        raise PermError(f"more than {MAX_LOOKUPS} DNS-querying terms (at {term}); receivers answer permerror")


async def _void_checked(count: _Count, answer) -> list[str]:
    records = await answer
    if not records:
        count.void += 1
        if count.void > MAX_VOID:
            raise PermError(f"more than {MAX_VOID} lookups found no records (void lookups)")
    return records


async def _matches(mechanism: str, argument: str, ctx, lookup: Lookup, count: _Count) -> bool:
    ip, domain = ctx[0], ctx[1]
    if mechanism == "all":
        if argument:
            raise PermError(f"{domain}: 'all' takes no argument")
        return True
    if mechanism in ("ip4", "ip6"):
        if not argument.startswith(":"):
            raise PermError(f"{domain}: {mechanism} needs an address")
        try:
            network = ipaddress.ip_network(argument[1:], strict=False)
        except ValueError:
            raise PermError(f"{domain}: {mechanism}{argument} is not an address or network") from None
        if network.version != (4 if mechanism == "ip4" else 6):
            raise PermError(f"{domain}: {mechanism}{argument} is the wrong address family")
        return ip.version == network.version and ip in network
    if mechanism in ("include", "exists") and not re.fullmatch(r":[^/]+", argument):
        raise PermError(f"{domain}: {mechanism} needs a domain (and takes no prefix length)")
    target, cidr4, cidr6 = _target(argument, domain, mechanism, ctx)
    _spend(count, f"{mechanism}:{target}")
    if mechanism == "include":
        result, _ = await _evaluate(ip, target, ctx[2], ctx[3], lookup, count, top=False)
        return result == PASS  # fail, softfail and neutral do not match (§5.2)
    if mechanism == "exists":
        return bool(await _void_checked(count, lookup.records(target, "A")))
    if mechanism == "a":
        return _within(ip, await _void_checked(count, _addresses(lookup, target, ip)), cidr4, cidr6)
    if mechanism == "mx":
        exchanges = await _void_checked(count, lookup.records(target, "MX"))
        if len(exchanges) > MAX_NAMES:
            raise PermError(f"{domain}: mx:{target} has more than {MAX_NAMES} exchanges")
        for exchange in exchanges:
            if _within(ip, await _addresses(lookup, exchange, ip), cidr4, cidr6):
                return True
        return False
    count.notes.append(f"{domain} uses 'ptr', which RFC 7208 §5.5 says not to use (slow, unreliable): replace it with ip4/ip6")
    for name in (await _void_checked(count, lookup.reverse(str(ip))))[:MAX_NAMES]:
        if (name == target or name.endswith("." + target)) and str(ip) in await _addresses(lookup, name, ip):
            return True
    return False


async def _addresses(lookup: Lookup, host: str, ip) -> list[str]:
    return await lookup.records(host, "A" if ip.version == 4 else "AAAA")


def _within(ip, addresses: list[str], cidr4: int | None, cidr6: int | None) -> bool:
    prefix = (32 if cidr4 is None else cidr4) if ip.version == 4 else (128 if cidr6 is None else cidr6)
    return any(ip in ipaddress.ip_network(f"{a}/{prefix}", strict=False) for a in addresses
               if ipaddress.ip_address(a).version == ip.version)


def _target(argument: str, domain: str, mechanism: str, ctx) -> tuple[str, int | None, int | None]:
    """The domain-spec (macros expanded; the current domain when absent) and the dual CIDR lengths."""
    found = re.fullmatch(r"(?::([^/]+))?(?:/(\d+))?(?://(\d+))?", argument)
    if not found:
        raise PermError(f"{domain}: {mechanism}{argument} does not parse")
    spec, cidr4, cidr6 = found.groups()
    if (cidr4 and int(cidr4) > 32) or (cidr6 and int(cidr6) > 128):
        raise PermError(f"{domain}: {mechanism}{argument} has a prefix length out of range")
    target = expand(spec, ctx) if spec else domain
    return target.lower().removesuffix("."), int(cidr4) if cidr4 else None, int(cidr6) if cidr6 else None


def expand(spec: str, ctx) -> str:
    """Macro expansion (§7) of a domain-spec; an unknown or malformed macro is a PermError."""
    ip, domain, sender, helo = ctx
    local, _, sender_domain = sender.rpartition("@")
    address = str(ip) if ip.version == 4 else ".".join(ip.exploded.replace(":", ""))
    values = {"s": sender, "l": local or "postmaster", "o": sender_domain, "d": domain, "i": address,
              "p": "unknown", "v": "in-addr" if ip.version == 4 else "ip6", "h": helo or domain}

    def one(found: re.Match) -> str:
        letter, digits, reverse, delimiters, escape = found.groups()
        if escape is not None:
            if escape in "%_-":
                return {"%": "%", "_": " ", "-": "%20"}[escape]
            raise PermError(f"'%{escape}' is not an SPF macro")
        if letter.lower() not in values:
            where = "allowed only in exp= text" if letter.lower() in "crt" else "not an SPF macro"
            raise PermError(f"%{{{letter}}} is {where}")
        parts = re.split("[" + re.escape(delimiters or ".") + "]", values[letter.lower()])
        if reverse:
            parts.reverse()
        if digits:
            if int(digits) == 0:
                raise PermError("an SPF macro may not keep 0 labels")
            parts = parts[-int(digits):]
        return ".".join(parts)

    if re.search(r"%(?![{%_-])", spec) or spec.count("%{") != len(re.findall(r"%\{[^}]*\}", spec)):
        raise PermError(f"{spec!r}: a malformed SPF macro")
    return _MACRO.sub(one, spec)
