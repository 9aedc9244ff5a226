"""The bounce classifier's rule table: enhanced status codes and reply-text patterns, as data.

Patterns are matched against the reply text lower-cased, with addresses and SMTP/RFC 3463
codes removed and whitespace collapsed (see tasks/bounces/classify.py). Order matters: the first rule
that matches decides, so narrower rules stand before broader ones.
"""

from __future__ import annotations

# Checked before any code: the reply blames the *sender* even when its code names the recipient
# (Apple's relay answers "550 5.1.1 <bounce address>: unauthorized sender"), so the address is fine.
SENDER_RULES: tuple[tuple[str, str], ...] = (
    ("policy", r"sender address rejected|sender verif\w* failed|unauthori[sz]ed sender|sender (?:is )?(?:denied|blocked|not allowed)"
               r"|sender denied|unresolvable|sender domain (?:does not|doesn't) (?:exist|resolve)"),
)

# RFC 3463 codes whose meaning is used consistently enough to decide before the text.
STRICT_CODES: dict[str, str] = {
    "5.1.1": "user_unknown",
    "5.1.10": "user_unknown",  # RFC 7505 null MX, and Microsoft's RecipientNotFound: hard either way
    "5.1.2": "domain_unknown",
    "5.4.4": "domain_unknown",  # "unable to route": Postfix and Exchange use it for a domain that does not resolve
    "5.4.310": "domain_unknown",  # Microsoft: DNS domain does not exist
    "5.1.6": "moved",
    "5.2.1": "mailbox_disabled",  # not 4.2.1: Gmail uses that for "receiving mail at a rate..."
    "4.2.2": "mailbox_full",
    "5.2.2": "mailbox_full",
    "5.3.4": "message_too_large",
    "4.4.7": "expired",
    "5.4.7": "expired",
    "5.4.300": "expired",  # Microsoft: message expired
    "5.7.7": "content_rejected",  # message integrity failure (malformed or duplicated headers)
    # Gmail and Microsoft sender-authentication codes: DMARC, SPF, DKIM, PTR.
    **{f"{c}.7.{d}": "auth_failure" for c in "45" for d in ("23", "24", "25", "26", "27", "30", "32", "509")},
    # Gmail's "unusual rate of unsolicited mail" and Microsoft's IP-reputation codes.
    **{f"{c}.7.28": "reputation_blocked" for c in "45"},
    **{f"4.7.{d}": "reputation_blocked" for d in ("650", "651", "652")},
    **{f"5.7.{d}": "reputation_blocked" for d in ("606", "607", "608", "708", "750")},
}

# (reason, pattern, codes): codes, when given, limits the rule to replies with one of those
# enhanced statuses. A rule whose reason is "unknown" stops the search: the text is a hedge.
TEXT_RULES: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    # cPanel's catch-all names three causes at once; believing any one of them would be a guess.
    ("unknown", r"may not exist, they may be blacklisted", None),
    ("auth_failure", r"dmarc|dkim|spf\b(?! domain)|unauthenticated|not authenticated|authentication (?:failed|failure|checks)"
                     r"|fails? to pass authentication|failed to pass authentication|authenticate with", None),
    ("relay_denied", r"relay(?:ing)? (?:access )?(?:is )?(?:denied|not permitted|not allowed|prohibited|refused|disallowed)"
                     r"|unable to relay|not (?:allowed|permitted|authori[sz]ed) to relay|we do not relay|no relaying", None),
    # IP/domain blocklists and reputation throttles, before "spam": their texts mention spam too.
    ("reputation_blocked", r"spamhaus|spamcop|barracuda|sorbs|dnsbl|rbl\b|blocked using|block ?list|black ?list|deny ?list"
                           r"|is listed (?:at|on|in|by)|are listed|been listed|reputation|untrusted ip|user complaints"
                           r"|banned sending ip|traffic not accepted|not accepted from this ip|unusual rate of|\[tss?\d\d\]|\[bl\d\d\]",
     None),
    ("spam_blocked", r"spam(?![\w-]|\.\w)|spam-?(?:filter|score|assassin)|anti-?spam|unsolicited|junk (?:mail|e-?mail)", None),
    ("content_rejected", r"virus|malware|infected|phishing|attachment|prohibited (?:content|file)|banned (?:file|content)"
                         r"|content (?:rejected|filter|policy|restrictions)|message content|too many equal|message integrity"
                         r"|invalid (?:x-)?headers?|malformed (?:x-)?headers?|duplicate (?:x-)?headers?", None),
    ("mailbox_full", r"over ?quota|quota exceed|exceeded (?:the )?(?:storage|quota)|mailbox (?:is )?full|inbox (?:is )?full"
                     r"|full mailbox|mailbox size|out of (?:storage|disk) space|insufficient (?:storage|disk) space"
                     r"|storage (?:is )?full|quotaexceeded|blocks limit exceeded|mailbox would exceed", None),
    ("mailbox_disabled", r"disabled|inactive|deactivated|dormant|no longer (?:active|in use)|account (?:has )?expired"
                         r"|account (?:has been |is )?(?:suspended|locked|closed|frozen)"
                         r"|mailbox (?:has been |is )?(?:suspended|locked|closed|frozen)|user (?:has been |is )?(?:suspended|locked)",
     None),
    ("moved", r"has moved|have moved|moved permanently|address (?:has )?changed|no longer (?:at|with) ", None),
    # Microsoft's directory-based edge blocking: the address is not in the tenant's directory.
    ("user_unknown", r"recipient address rejected: access denied", ("5.4.1", "4.4.1")),
    # A temporary DNS failure ("try again") says nothing about whether the domain exists.
    ("network", r"host not found, try again|temporary failure in name resolution|servfail"
                r"|dns (?:lookup|query|resolution) (?:failed|failure|timed out|error)", None),
    ("domain_unknown", r"host or domain name not found|domain (?:name )?(?:\S+ )?(?:not found|does not exist|doesn't exist|is invalid)"
                       r"|unknown (?:domain|host)|no mx|no mail exchanger|no such domain|null ?mx|does not accept (?:e-?)?mail"
                       r"|nxdomain|non-?existent ?domain|domainnonexistent|unrouteable (?:mail )?domain", None),
    ("user_unknown", r"unknown user|user (?:\S+ )?(?:unknown|not found)|recipient (?:\S+ )?(?:unknown|not found)"
                     r"|mailbox (?:\S+ )?(?:unknown|not found)|address (?:\S+ )?(?:unknown|not found)|addressee (?:\S+ )?unknown"
                     r"|account (?:\S+ )?(?:unknown|not found)|no such (?:user|recipient|mailbox|address|account|person)"
                     r"|does ?n[o']t exist|dosn't exist|unknown (?:recipient|address|mailbox|local[- ]part|account)"
                     r"|invalid (?:recipient|mailbox|address|user|account)|recipient rejected\s*(?:[.(]|$)|address rejected\s*(?:[.(]|$)"
                     r"|mailbox (?:is )?(?:currently )?unavailable|no mailbox|not a valid (?:recipient|mailbox|user|address)"
                     r"|unrouteable address|undeliverable address|bad (?:recipient|destination)|destinataire invalide"
                     r"|recip(?:ient)?notfound|nosuchuser|not listed in (?:domino|public)|doesn't have an? \S+ account"
                     r"|does not have an? \S+ account|address (?:is )?not configured", None),
    ("message_too_large", r"too large|too big|size (?:limit|exceeds|exceeded)|exceeds? (?:the )?(?:maximum |max )?(?:message )?size"
                          r"|message size|maximum (?:message )?size|message length exceeds", None),
    # Greylisting is a request to come back later, like a throttle.
    ("rate_limited", r"rate.?limit|too many (?:connections|messages|recipients|concurrent|sessions|mails|emails)"
                     r"|receiving mail (?:at a rate|too quickly)|too fast|too quickly|slow down|throttl|temporarily deferred"
                     r"|server busy|connection (?:rate|limit)|message (?:rate|limit)|sending (?:rate|limit)|hourly (?:rate|limit)"
                     r"|daily (?:rate|limit)|max(?:imum)? (?:messages?|connections?) per|trop de connexions|gr[ae]ylist", None),
    ("expired", r"expired|too long in (?:the )?queue|queue (?:life ?time|time ?out)|retry timeout exceeded"
                r"|could not be delivered within", None),
    ("network", r"timed? ?out|connection (?:refused|reset|lost|closed|dropped|failure)|lost connection|no route to host"
                r"|network (?:is )?unreachable|host (?:is )?unreachable|too many hops|hop count|routing loop|mail loop|loops? back"
                r"|unable to connect|could not connect|can't connect|broken pipe", None),
    ("syntax", r"syntax|command (?:not )?(?:recognized|unrecognized)|unrecognized command|bad sequence|rcpt first|mail first"
               r"|line too long|smtputf8", None),
    ("system", r"local (?:error|problem)|internal (?:server )?error|system error|server error|processing error"
               r"|temporary (?:local )?(?:failure|error)|insufficient system|system (?:resources|storage)|shutting down"
               r"|service (?:is )?(?:temporarily )?(?:not available|unavailable)|configuration error", None),
    ("policy", r"polic(?:y|ies)|not allowed|not permitted|authori[sz]ed|permission|access denied|prohibit|refuse|blocked|denied"
               r"|rejected|not accepted", None),
)

# When no rule matched: the RFC 3463 detail (class-free "subject.detail"), then the subject.
DETAIL_FALLBACK: dict[str, str] = {
    "1.3": "syntax", "1.7": "policy", "1.8": "policy", "2.1": "mailbox_disabled", "2.3": "message_too_large", "2.4": "system",
}
SUBJECT_FALLBACK: dict[str, str] = {"3": "system", "4": "network", "5": "syntax", "6": "content_rejected", "7": "policy"}
# A temporary security/policy refusal of a bulk sender is a throttle in practice (Gmail and Yahoo 4.7.0).
TEMPORARY_POLICY = "rate_limited"
# Then the basic reply code (RFC 5321).
BASIC_FALLBACK: dict[int, str] = {421: "rate_limited", 451: "system", 452: "system", 500: "syntax", 501: "syntax",
                                  502: "syntax", 503: "syntax", 504: "syntax"}
