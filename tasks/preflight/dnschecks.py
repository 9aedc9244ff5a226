"""The DNS checks: SPF permits every sending source, the DKIM key is published, DMARC is set and aligned, the bounce
domain takes mail, the tracking host resolves."""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from urllib.parse import urlsplit

import dns.asyncresolver

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.core.dns import OK, lookup_domain
from mailflow.tasks.deliver.transport import MX
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.preflight.checks import FAIL, PASS, WARN, Check, unchecked
from mailflow.tasks.preflight.dmarc import BadRecord, DmarcRecord, aligned, dmarc_texts, organisational_domain, parse_record
from mailflow.tasks.preflight.lookup import DnsTrouble, Lookup
from mailflow.tasks.preflight.spf import NONE, PERMERROR, TEMPERROR, PermError, check_host, spf_record
from mailflow.tasks.preflight.spf import PASS as SPF_PASS


def from_domains(spec: CampaignSpec) -> list[str]:
    """The From domains of the campaign and its variants."""
    addresses = [spec.from_addr] + [spec.for_variant(n).from_addr for n in spec.variant_names]
    return list(dict.fromkeys(parseaddr(a)[1].rpartition("@")[2].lower() for a in addresses))


async def sending_sources(settings: Settings, spec: CampaignSpec, lookup: Lookup) -> tuple[list[str], str]:
    """The IPs receivers will see mail come from, and where they came from; ([], why) when they are not known."""
    if settings.preflight.source_ips:
        return list(settings.preflight.source_ips), "preflight.source_ips"
    if spec.transport == MX:
        if settings.smtp.mx_sources:
            return list(settings.smtp.mx_sources), "smtp.mx_sources"
        return await lookup.addresses(settings.smtp.helo), f"the helo host {settings.smtp.helo}"
    found: list[str] = []
    for relay in settings.pool(spec.transport).relays:
        for address in await lookup.addresses(relay.host):
            if ipaddress.ip_address(address).is_private or ipaddress.ip_address(address).is_loopback:
                return [], (f"relay {relay.host} is on the private address {address}: the address its mail leaves "
                            "from is not known")
            found.append(address)
    return list(dict.fromkeys(found)), f"the relays of pool {spec.transport!r}"


async def spf_check(settings: Settings, spec: CampaignSpec, lookup: Lookup) -> Check:
    """SPF of the envelope sender's domain (the bounce domain: what receivers evaluate) for every sending source."""
    domain = settings.smtp.bounce_domain
    try:
        ips, origin = await sending_sources(settings, spec, lookup)
    except DnsTrouble as exc:
        return unchecked("spf", f"the sending addresses did not resolve ({exc})")
    if not ips:
        try:  # without the sources there is still the record to find: its absence FAILs all the same
            record = await spf_record(domain, lookup)
        except (DnsTrouble, PermError) as exc:
            record = str(exc)
        if record is None:
            return Check("spf", FAIL, f"{domain} (the Return-Path domain) publishes no SPF record",
                         f'publish a TXT record at {domain}: "v=spf1 ip4:<your sending IP> -all"')
        return Check("spf", WARN, f"SPF of {domain} not evaluated: {origin or 'no sending address'}",
                     "set preflight.source_ips to the public IPs your mail leaves from")
    notes, missing = [], []
    for ip in ips:
        result = await check_host(ip, domain, lookup, sender=f"bounce@{domain}", helo=settings.smtp.helo)
        notes += result.notes
        if result.result == TEMPERROR:
            return unchecked("spf", result.detail)
        if result.result == NONE:
            return Check("spf", FAIL, f"{domain} (the Return-Path domain) publishes no SPF record",
                         f'publish a TXT record at {domain}: "v=spf1 {" ".join(_mechanism(i) for i in ips)} -all"')
        if result.result == PERMERROR:
            return Check("spf", FAIL, f"SPF of {domain} is a permerror: {result.detail}",
                         f"flatten {domain}'s SPF record (fewer include/a/mx terms) and fix its syntax")
        if result.result != SPF_PASS:
            missing.append((ip, result))
    if missing:
        shown = ", ".join(f"{ip} ({r.result})" for ip, r in missing)
        terms = " ".join(f'"{_mechanism(ip)}"' for ip, _ in missing)
        return Check("spf", FAIL, f"SPF of {domain} does not permit {shown}, from {origin}",
                     f"add {terms} to {domain}'s SPF record")
    if notes:
        return Check("spf", WARN, f"SPF of {domain} permits {', '.join(ips)}; {notes[0]}", "replace ptr with ip4/ip6 terms")
    return Check("spf", PASS, f"SPF of {domain} permits {', '.join(ips)} ({origin})")


def _is_ip(text: str) -> bool:
    try:
        return bool(ipaddress.ip_address(text))
    except ValueError:
        return False


def _mechanism(ip: str) -> str:
    return f"ip{ipaddress.ip_address(ip).version}:{ip}"


async def dkim_check(settings: Settings, lookup: Lookup) -> Check:
    """Each configured key's selector record exists and carries the configured public key."""
    from mailflow.tasks.compose.dkim import dns_record, signer_for

    try:
        signer = signer_for(settings.dkim)
    except MailflowError as exc:
        return Check("dkim", FAIL, f"the DKIM key cannot be used: {exc}", "fix the [dkim] settings")
    if signer is None:
        return Check("dkim", WARN, "mailflow does not sign (no dkim.domain): unless your relay signs, Gmail and Yahoo "
                     "treat bulk mail without DKIM as unauthenticated", "set [dkim] domain, selector and a private key")
    found = []
    for key in signer.keys:
        name, wanted = f"{key.selector}._domainkey.{key.domain}", dns_record(key)
        try:
            texts = await lookup.records(name, "TXT")
        except DnsTrouble as exc:
            return unchecked("dkim", str(exc))
        published = [_tags(t) for t in texts if "p" in _tags(t)]
        if not published:
            return Check("dkim", FAIL, f"no DKIM key record at {name}", f'publish a TXT record at {name}: "{wanted}"')
        if _tags(wanted)["p"] not in [tags["p"] for tags in published]:
            why = "is empty (the key is revoked)" if not published[0]["p"] else "is not the configured key"
            return Check("dkim", FAIL, f"the key at {name} {why}", f'replace the TXT record at {name} with "{wanted}"')
        found.append(f"{name} ({key.algorithm})")
    return Check("dkim", PASS, f"published key matches: {', '.join(found)}")


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        tags[name.strip().lower()] = "".join(value.split())
    return tags


async def dmarc_record(domain: str, lookup: Lookup) -> DmarcRecord | None | str:
    """The policy for mail from `domain`: its own record, else its organisational domain's (RFC 7489 §6.6.3).
    None when neither has one; a string saying why when the record found is broken."""
    for where in dict.fromkeys([domain, organisational_domain(domain)]):
        texts = dmarc_texts(await lookup.records(f"_dmarc.{where}", "TXT"))
        if len(texts) > 1:
            return f"_dmarc.{where} has {len(texts)} DMARC records (receivers then apply none)"
        if texts:
            try:
                return parse_record(where, texts[0])
            except BadRecord as exc:
                return f"_dmarc.{where}: {exc}"
    return None


async def dmarc_checks(settings: Settings, domain: str, lookup: Lookup) -> list[Check]:
    """The policy (`dmarc`), and the From domain aligned with DKIM's d= and the Return-Path (`alignment`)."""
    try:
        record = await dmarc_record(domain, lookup)
    except DnsTrouble as exc:
        assumed = _alignment(settings, domain, None)
        if assumed.status == PASS:  # the record's adkim/aspf could ask for strict alignment
            assumed = unchecked("alignment", f"{assumed.detail}, assuming relaxed: the DMARC record did not answer")
        return [unchecked("dmarc", str(exc)), assumed]
    org = organisational_domain(domain)
    if record is None:
        looked = " or ".join(f"_dmarc.{d}" for d in dict.fromkeys([domain, org]))
        policy = Check("dmarc", FAIL, f"no DMARC record for {domain} (none at {looked})",
                       f'publish a TXT record at _dmarc.{org}: "v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}"')
    elif isinstance(record, str):
        policy = Check("dmarc", FAIL, record, f'publish one record: "v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}"')
    else:
        applied = record.policy if record.domain == domain else record.subdomain_policy
        where = f"p={applied} at _dmarc.{record.domain}"
        policy = (Check("dmarc", WARN, f"{where}: receivers only report, they do not act on failures",
                        f"move _dmarc.{record.domain} to p=quarantine once its reports show all your mail passing")
                  if applied == "none" else Check("dmarc", PASS, where))
    return [policy, _alignment(settings, domain, record if isinstance(record, DmarcRecord) else None)]


def _alignment(settings: Settings, domain: str, record: DmarcRecord | None) -> Check:
    adkim, aspf = (record.adkim, record.aspf) if record else ("r", "r")
    bounce, signing = settings.smtp.bounce_domain, settings.dkim.domain
    spf_ok = aligned(domain, bounce, aspf)
    dkim_ok = bool(signing) and aligned(domain, signing, adkim)
    mode = {"r": "relaxed", "s": "strict"}
    spf_fix = f"set smtp.bounce_domain to {'a subdomain of ' if aspf == 'r' else ''}{domain}"
    if spf_ok and dkim_ok:
        return Check("alignment", PASS, f"From {domain} aligned with DKIM d={signing} ({mode[adkim]}) and "
                     f"Return-Path {bounce} ({mode[aspf]})")
    if dkim_ok:
        return Check("alignment", WARN, f"Return-Path {bounce} is not aligned with From {domain} ({mode[aspf]}): "
                     f"DMARC rests on DKIM alone", spf_fix)
    dkim_fix = f"set dkim.domain to {domain}" if signing else f"sign with a key of {domain} ([dkim])"
    dkim_why = f"DKIM d={signing} is not aligned ({mode[adkim]})" if signing else "mailflow does not sign"
    if spf_ok:
        return Check("alignment", WARN, f"{dkim_why}: DMARC for From {domain} rests on SPF alone, which forwarding breaks",
                     dkim_fix)
    return Check("alignment", FAIL, f"neither DKIM nor the Return-Path {bounce} is aligned with From {domain} "
                 f"({dkim_why}): DMARC fails", f"{spf_fix}, and {dkim_fix}")


async def bounce_mx_check(settings: Settings, resolver: dns.asyncresolver.Resolver) -> Check:
    domain = settings.smtp.bounce_domain
    status = await lookup_domain(domain, resolver)
    if status.status == OK:
        return Check("bounce_mx", PASS, f"{domain} takes mail: {status.detail}")
    if status.status == "error":
        return unchecked("bounce_mx", f"{domain}: {status.detail}")
    return Check("bounce_mx", FAIL, f"bounces to {domain} cannot be delivered: {status.detail}",
                 f"add an MX record for {domain} pointing at the host that receives your bounce mail")


async def tracking_host_check(settings: Settings, lookup: Lookup) -> Check:
    host = settings.preflight.tracking_domain or (urlsplit(settings.tracking.base_url).hostname or "")
    fix = "point tracking.base_url at a public host name" + ("" if _is_ip(host) else f" (an A or CNAME record for {host})")
    try:
        addresses = await lookup.addresses(host)
    except DnsTrouble as exc:
        return unchecked("tracking_host", str(exc))
    if not addresses:
        return Check("tracking_host", FAIL, f"the tracking host {host} does not resolve: every link and the "
                     "unsubscribe URL would be dead", f"add an A (or CNAME) record for {host} pointing at the tracking service")
    unreachable = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    if unreachable:
        return Check("tracking_host", WARN, f"the tracking host {host} is {', '.join(unreachable)}: recipients "
                     "cannot reach it", fix)
    if host in addresses:
        return Check("tracking_host", WARN, f"links point at the bare address {host}: filters distrust them", fix)
    return Check("tracking_host", PASS, f"{host} resolves to {', '.join(addresses[:3])}")
