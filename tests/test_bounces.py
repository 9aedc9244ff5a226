"""The bounce classifier: a real corpus of bounce bodies, typical provider replies, and wild input."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.bounces.classify import KINDS, REASONS, Verdict, classify_reply, classify_text, extract_status, suppresses_at_once
from tests.support.bounce_corpus import CORPUS, DISAGREEMENTS, NAMES, load, mapped


def problems(name: str) -> list[str]:
    """What mailflow gets wrong about one corpus file, by the mapping above; empty when it agrees."""
    text, expected = load(name)
    codes = ((expected.get("data") or {}).get("error") or {}).get("code") or {}
    want_codes = (int(codes["basic"]) if codes.get("basic") else None, codes.get("enhanced"))
    found = []
    if extract_status(text) != want_codes:
        found.append(f"codes {extract_status(text)} != {want_codes}")
    verdict, (kind, reason) = classify_text(text), mapped(expected)
    if (verdict.kind not in ("hard", "soft")) if kind is None else (verdict.kind != kind):
        found.append(f"kind {verdict.kind} != {kind or 'hard|soft'}")
    if reason is not None and verdict.reason != reason:
        found.append(f"reason {verdict.reason} != {reason}")
    return found


def test_the_corpus_is_there_and_the_exceptions_name_its_files():
    assert len(NAMES) == 111, f"expected the 111 bodies of {CORPUS.resolve()} (see its README.md)"
    assert set(DISAGREEMENTS) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_corpus_file(name):
    found = problems(name)
    if name in DISAGREEMENTS:
        assert found, f"{name} now agrees with the corpus: remove it from DISAGREEMENTS"
    else:
        assert not found, f"{name}: {'; '.join(found)}"


def test_corpus_agreement_rate():
    agree = [name for name in NAMES if not problems(name)]
    rate = len(agree) / len(NAMES)
    print(f"bounce corpus agreement: {len(agree)}/{len(NAMES)} = {rate:.1%}")
    assert len(agree) == len(NAMES) - len(DISAGREEMENTS)


# --- Typical replies of the big providers and MTAs, as aiosmtplib hands them over ---------
REPLIES = [
    # Gmail
    (550, None, "5.1.1 The email account that you tried to reach does not exist. Please try\n5.1.1 double-checking the "
                "recipient's email address for typos or\n5.1.1 unnecessary spaces. For more information, go to\n5.1.1  "
                "https://support.google.com/mail/?p=NoSuchUser d2si1234567qkb.123 - gsmtp", "hard", "user_unknown"),
    (550, "5.2.1", "5.2.1 The email account that you tried to reach is disabled. For more information, go to\n5.2.1  "
                   "https://support.google.com/mail/?p=DisabledUser a1si99 - gsmtp", "soft", "mailbox_disabled"),
    (452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota. Please direct\n4.2.2 the recipient to\n"
                   "4.2.2  https://support.google.com/mail/?p=OverQuotaTemp b2si77 - gsmtp", "soft", "mailbox_full"),
    (550, "5.7.26", "5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users, and "
                    "has been blocked. The sender must authenticate with at least one of SPF or DKIM.", "soft", "auth_failure"),
    (550, "5.7.1", "5.7.1 [203.0.113.5] Our system has detected that this message is\n5.7.1 likely unsolicited mail. To "
                   "reduce the amount of spam sent to Gmail,\n5.7.1 this message has been blocked.", "soft", "spam_blocked"),
    (421, "4.7.0", "4.7.0 [203.0.113.5] Our system has detected an unusual rate of\n4.7.0 unsolicited mail originating from "
                   "your IP address. To protect our\n4.7.0 users from spam, mail sent from your IP address has been "
                   "temporarily\n4.7.0 rate limited.", "soft", "reputation_blocked"),
    (450, "4.2.1", "4.2.1 The user you are trying to contact is receiving mail at a rate that\n4.2.1 prevents additional "
                   "messages from being delivered.", "soft", "rate_limited"),
    (552, "5.3.4", "5.3.4 Your message exceeded Google's message size limits.", "soft", "message_too_large"),
    (550, "5.7.25", "5.7.25 [2001:db8::1] The IP address sending this message does not have a PTR record setup",
     "soft", "auth_failure"),
    # Microsoft (Outlook.com, Exchange Online)
    (550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). [AM0EUR02FT012.eop-EUR02.prod."
                   "protection.outlook.com]", "hard", "user_unknown"),
    (550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) [DB5EUR03FT010.eop-EUR03.prod.protection."
                   "outlook.com]", "hard", "user_unknown"),
    (550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "hard", "user_unknown"),
    (550, "5.7.1", "Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet service provider "
                   "since part of their network is on our block list (S3150).", "soft", "reputation_blocked"),
    (451, "4.7.650", "The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation. (S775)",
     "soft", "reputation_blocked"),
    (550, "5.7.509", "Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy "
                     "of reject.", "soft", "auth_failure"),
    (554, "5.2.2", "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
     "soft", "mailbox_full"),
    (451, "4.7.500", "Server busy. Please try again later from [203.0.113.5]. (S77714)", "soft", "rate_limited"),
    (550, "5.7.520", "Access denied, Your organization does not allow external forwarding.", "soft", "policy"),
    (554, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain", "hard", "domain_unknown"),
    (450, "4.4.7", "Message delayed", "soft", "expired"),
    # Yahoo / AOL
    (554, None, "delivery error: dd This user doesn't have a yahoo.com account (jo@yahoo.com) [0] - mta1001.mail.gq1."
                "yahoo.com", "hard", "user_unknown"),
    (554, None, "30 Sorry, your message to jo@yahoo.com cannot be delivered. This mailbox is disabled (554.30).",
     "soft", "mailbox_disabled"),
    (421, "4.7.0", "[TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume or user complaints - "
                   "4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "soft", "reputation_blocked"),
    (553, "5.7.2", "[TSS09] All messages from 203.0.113.5 will be permanently deferred; Retrying will NOT succeed.",
     "soft", "reputation_blocked"),
    (550, "5.7.9", "This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to "
                   "authenticate with either SPF or DKIM.", "soft", "auth_failure"),
    (552, None, "1 Requested mail action aborted, mailbox not found", "hard", "user_unknown"),
    (421, None, "Max message per connection reached, closing transmission channel", "soft", "rate_limited"),
    # Postfix
    (550, "5.1.1", "<jo@example.com>: Recipient address rejected: User unknown in local recipient table", "hard", "user_unknown"),
    (450, "4.1.1", "<jo@example.com>: Recipient address rejected: User unknown in virtual mailbox table", "soft", "user_unknown"),
    (550, "5.1.2", "<jo@nowhere.example>: Recipient address rejected: Domain not found", "hard", "domain_unknown"),
    (554, "5.7.1", "<jo@example.com>: Relay access denied", "soft", "relay_denied"),
    (554, "5.7.1", "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; "
                   "https://www.spamhaus.org/query/ip/203.0.113.5", "soft", "reputation_blocked"),
    (450, "4.2.0", "<jo@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/"
                   "example.com.html", "soft", "rate_limited"),
    (550, "5.1.0", "<bounce+x1@bounces.example.com>: Sender address rejected: User unknown in local recipient table",
     "soft", "policy"),
    (552, "5.3.4", "Message size exceeds fixed limit", "soft", "message_too_large"),
    (452, "4.3.1", "Insufficient system storage", "soft", "system"),
    (421, "4.4.2", "mx.example.com Error: timeout exceeded", "soft", "network"),
    (550, "5.1.6", "<jo@example.com>: Recipient address rejected: User has moved to jo@example.org", "hard", "moved"),
    (503, "5.5.1", "Error: need RCPT command", "soft", "syntax"),
    (554, "5.7.1", "This message has been blocked because it contains a virus", "soft", "content_rejected"),
    # Exim
    (550, None, "Unrouteable address", "hard", "user_unknown"),
    (550, None, "Verification failed for <bounce@bounces.example.com>\nUnrouteable address\nSender verify failed",
     "soft", "policy"),
    (451, None, "Temporary local problem - please try later", "soft", "system"),
    (550, None, "No Such User Here", "hard", "user_unknown"),
    (554, None, "Transaction failed", "soft", "unknown"),
]


@pytest.mark.parametrize(("code", "enhanced", "text", "kind", "reason"), REPLIES)
def test_typical_replies(code, enhanced, text, kind, reason):
    assert classify_reply(code, enhanced, text) == Verdict(kind, reason)


def test_the_typical_replies_reach_every_failure_reason():
    assert {r[4] for r in REPLIES} == set(REASONS) - {"complaint", "auto_reply", "delivered"}


@pytest.mark.parametrize(("code", "enhanced", "text"), [r[:3] for r in REPLIES if r[3] == "hard"])
def test_a_4xx_is_never_hard(code, enhanced, text):
    temporary = "4" + enhanced[1:] if enhanced else None
    text = re.sub(r"(?m)^5\.", "4.", text)
    verdict = classify_reply(400 + code % 100, temporary, text)
    assert verdict.kind == "soft" and verdict.reason == classify_reply(code, enhanced, text).reason


@pytest.mark.parametrize(("text", "reason"), [
    ("<disabled.spam@example.com>: user unknown", "user_unknown"),  # unmasked, the address would say disabled
    ("<blocked-list@example.com>: Recipient address rejected: Access denied", "policy"),
    ("mailbox carol@example.com unavailable", "user_unknown"),
])
def test_addresses_neither_steer_nor_appear_in_the_verdict(text, reason):
    verdict = classify_reply(550, None, text)
    assert verdict.reason == reason
    assert "@" not in f"{verdict.kind}{verdict.reason}" and {verdict.kind, verdict.reason} <= set(KINDS) | set(REASONS)


def test_2xx_is_delivered_and_unknown_codes_are_never_hard():
    assert classify_reply(250, None, "2.0.0 OK queued as ABC123") == Verdict("delivered", "delivered")
    assert classify_reply(None, "2.1.5", "") == Verdict("delivered", "delivered")
    assert classify_reply(None, "5.1.1", "") == Verdict("hard", "user_unknown")
    assert classify_reply(999, "5.1.1", "user unknown").kind == "soft"
    assert classify_reply(550, "not-a-status", "user unknown") == Verdict("hard", "user_unknown")


def test_suppression_at_once_is_for_hard_bounces_and_complaints():
    assert [k for k in KINDS if suppresses_at_once(Verdict(k, "unknown"))] == ["hard", "complaint"]


def test_a_verdict_outside_the_taxonomy_is_refused():
    with pytest.raises(ValueError):
        Verdict("bounced", "user_unknown")
    with pytest.raises(ValueError):
        Verdict("hard", "gone")


# --- Free-text bodies beyond the corpus ----------------------------------------------------
@pytest.mark.parametrize(("text", "codes", "verdict"), [
    ("Reporting-MTA: dns; mx.example.com\nAction: delivered\nStatus: 2.0.0\n", (None, "2.0.0"), ("delivered", "delivered")),
    ("I am out of the office until Monday and will reply on my return.", (None, None), ("auto_reply", "auto_reply")),
    ("This is an email abuse report for an email message received from IP 203.0.113.5\nFeedback-Type: abuse\n",
     (None, None), ("complaint", "complaint")),
    ("Lunch on Friday?", (None, None), ("not_bounce", "unknown")),
    ("Call me on 555 0100; see section 5.1.1 of the contract.", (555, "5.1.1"), ("not_bounce", "unknown")),
    ("550 No such user here", (550, None), ("hard", "user_unknown")),
    # A transcript shows the accepted sender before the refused recipient.
    ("--- Transcript of session follows ---\n<<< 250 2.1.0 <a@example.com>... Sender ok\n"
     "<<< 550 5.1.1 <b@example.com>... User unknown\n", (550, "5.1.1"), ("hard", "user_unknown")),
    # A delay notice quotes a 5xx it has not given up on.
    ("Delivery incomplete\n\nThere was a temporary problem delivering your message.\n\n"
     "The response was:\n550 5.1.1 The email account that you tried to reach does not exist.\n",
     (550, "5.1.1"), ("soft", "user_unknown")),
])
def test_free_text_bodies(text, codes, verdict):
    assert extract_status(text) == codes
    assert classify_text(text) == Verdict(*verdict)


# --- Wild input ------------------------------------------------------------------------------
PHRASES = st.sampled_from(["550", "4.2.2", "5.1.1", "user unknown", "<a@b.c>", "spam", "try again", "\n", "421-",
                           "#5.1.0", "over quota", "blocked using", "é", "0.0.0.0", "550-5.7.1", " ", "\x00"])
TEXTS = st.one_of(st.text(max_size=300), st.lists(PHRASES, max_size=25).map(" ".join))
ENHANCED = st.one_of(st.none(), st.text(max_size=10), st.from_regex(r"[2-5]\.\d{1,3}\.\d{1,3}", fullmatch=True))
CODES = st.one_of(st.none(), st.integers(-10**6, 10**6), st.sampled_from([250, 421, 450, 451, 452, 550, 552, 553, 554]))


@given(code=CODES, enhanced=ENHANCED, text=TEXTS)
@example(code=450, enhanced="5.1.1", text="5.1.1 user unknown")
@example(code=None, enhanced=None, text="")
@settings(max_examples=400, deadline=None)
def test_classify_reply_never_raises_and_stays_in_the_taxonomy(code, enhanced, text):
    verdict = classify_reply(code, enhanced, text)
    assert verdict.kind in ("hard", "soft", "delivered") and verdict.reason in REASONS
    if code is not None and not 500 <= code < 600:
        assert verdict.kind != "hard"


@given(text=TEXTS)
@settings(max_examples=300, deadline=None)
def test_classify_text_never_raises_and_codes_are_well_formed(text):
    code, status = extract_status(text)
    assert code is None or 200 <= code < 600
    assert status is None or re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status)
    verdict = classify_text(text)
    assert verdict.kind in KINDS and verdict.reason in REASONS
