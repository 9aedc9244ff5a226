"""`mailflow bounces fetch`: every configured bounce mailbox (local Maildir, IMAP) read once, recorded durably, summarised."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.bounces.imap import PASSWORD_ENV, fetch_configured, parse_url
from mailflow.tasks.bounces.intake import BounceRecorder, message_rows
from mailflow.tasks.bounces.maildir import check_maildir, fetch_maildir, maildir_path
from mailflow.tasks.bounces.mapping import SendIndex
from mailflow.tasks.compose.tokens import signer_from_settings

KIND_ORDER = ("hard", "soft", "complaint", "auto_reply", "unsubscribe", "delivered", "not_bounce")


def configured_maildir(settings: Settings) -> Path | None:
    """The `[bounces] maildir` to read, checked; None when unset. Raises when neither mailbox is configured, or
    the IMAP one lacks what it needs."""
    maildir = maildir_path(settings.home, settings.bounce_maildir)
    if maildir is None and not settings.bounce_imap_url:
        raise MailflowError('bounces.maildir / bounces.imap.url: neither is set, so there is no mailbox to fetch from '
                            '(e.g. maildir = "/var/mail/bounces/Maildir" or url = "imaps://bounces@mail.example.com/INBOX")')
    if maildir is not None:
        check_maildir(maildir)
    if settings.bounce_imap_url:  # a bad URL or a missing password is found before the Maildir is read, not after
        parse_url(settings.bounce_imap_url)
        if not settings.bounce_imap_password:
            raise MailflowError(f"bounces.imap.password: not set; set {PASSWORD_ENV}")
    return maildir


def fetch_bounces(settings: Settings) -> dict:
    """Read the Maildir, then the IMAP mailbox (each only if configured): every new message classified, mapped to
    its send, recorded (events, suppressions) and made durable once per batch before the message counts as done."""
    maildir = configured_maildir(settings)
    index = SendIndex(settings.home, signer_from_settings(settings.tracking))  # once per run
    kinds: Counter[str] = Counter()
    totals = Counter()
    sources: dict[str, dict] = {}
    with BounceRecorder(settings.home) as recorder:

        def handle(raw: bytes, source: str) -> None:
            rows = message_rows(raw, source, index)
            recorder.record(raw, rows)
            totals["fetched"] += 1
            for row in rows:
                kinds[row.get("action") or row["kind"]] += 1
                totals["unmapped"] += bool(row.get("unmapped"))

        if maildir is not None:
            report = fetch_maildir(maildir, handle, recorder.sync)
            sources["maildir"] = {"path": str(maildir), "fetched": report.fetched, "moved": report.moved}
        if settings.bounce_imap_url:
            imap = fetch_configured(settings, handle, recorder.sync)
            sources["imap"] = {"fetched": imap.fetched, "moved": imap.moved, "uidvalidity": imap.uidvalidity,
                               "last_uid": imap.last_uid, "rescanned": imap.rescanned}
    return {"fetched": totals["fetched"], "kinds": {k: kinds[k] for k in KIND_ORDER if kinds[k]},
            "unmapped": totals["unmapped"], "suppressed": recorder.counts["suppressed"],
            "moved": sum(s["moved"] for s in sources.values()), "events": str(recorder.path) if recorder.path else None,
            "sources": sources}


def summary_line(result: dict) -> str:
    """One line: `fetched 12 message(s): 3 hard, 1 soft, 1 unsubscribe; 1 unmapped, 4 suppressed, 12 moved`."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in result["kinds"].items()) or "nothing new"
    return (f"fetched {result['fetched']} message(s): {kinds}; {result['unmapped']} unmapped, "
            f"{result['suppressed']} suppressed, {result['moved']} moved")
