"""Compose one recipient's message: render, headers (List-Unsubscribe, VERP, trace), MIME, DKIM."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import Any

from mailflow.errors import MailflowError
from mailflow.tasks.compose.headers import check, encode_list, encode_mailbox, encode_text
from mailflow.tasks.compose.message import Envelope, HeaderInjection
from mailflow.tasks.compose.mime import CrlfMessage, Multipart
from mailflow.tasks.compose.render import CampaignTemplates, Helpers, RenderError
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.compose.tracking import Redirects
from mailflow.tasks.core.validate import SMTPUTF8, UnsendableAddress, sendable_address
from mailflow.tasks.deliver.smtp import Cause, Outcome
from mailflow.tasks.plan.campaign import CampaignSpec

SEND, UNSUBSCRIBE, VIEW, OPEN, CLICK = "send", "unsubscribe", "view", "open", "click"


class Composer:
    """Everything constant for a campaign variant is prepared here once; compose() does the rest."""

    def __init__(self, spec: CampaignSpec, templates: CampaignTemplates, signer: TokenSigner, base_url: str,
                 bounce_domain: str, dkim=None, variant: str = "A"):
        self.spec, self.templates, self.signer, self.dkim = spec, templates, signer, dkim
        # Both end up in every message's header fields: a line break in the settings must not get there
        self.base = check("tracking.base_url", base_url.rstrip("/"))
        self.bounce_domain = check("smtp.bounce_domain", bounce_domain)
        self.redirects = Redirects(signer, self.base)
        self.mime = Multipart()  # boundary and part headers, once per chunk task
        name, address = parseaddr(spec.from_addr)
        self.domain = address.rpartition("@")[2]
        self.from_header = encode_mailbox(check("From", name), address, len("From: "))
        self.reply_to = encode_mailbox(None, parseaddr(spec.reply_to)[1]) if spec.reply_to else None
        # Feedback-ID (Gmail's feedback loop): campaign:variant:stream:sender, stable per campaign.
        self.feedback_id = check("Feedback-ID", f"{spec.campaign_id}:{variant}:bulk:mailflow")
        # Every token names the variant by its index (0 for a campaign without variants: its one is "A"),
        # so the tracking service attributes an open or click to it without the warehouse
        if variant not in spec.variant_names:
            raise MailflowError(f"campaign {spec.campaign_id!r} has no variant {variant!r}")
        self.variant_index = spec.variant_names.index(variant)
        self._date_second, self._date = -1, ""

    def helpers(self, subscriber_id: int) -> tuple[Helpers, str]:
        cid, sign, base, variant = self.spec.campaign_id, self.signer.sign, self.base, self.variant_index
        click = sign(cid, subscriber_id, CLICK, variant)
        return Helpers(
            unsubscribe_url=f"{base}/u/{sign(cid, subscriber_id, UNSUBSCRIBE, variant)}",
            view_url=f"{base}/v/{sign(cid, subscriber_id, VIEW, variant)}",
            open_url=f"{base}/o/{sign(cid, subscriber_id, OPEN, variant)}.gif",
            click_url=lambda n: f"{base}/c/{click}/{int(n)}",
            link_url=lambda url: self.redirects.url(click, url),
        ), sign(cid, subscriber_id, SEND, variant)

    def compose(self, row: Mapping[str, Any]) -> Envelope | Outcome:
        """The recipient's envelope, or a `failed` outcome saying why it cannot be sent.

        The template renders before the address is judged, so a failure for the address (cause
        Cause.ADDRESS) says the template worked for this recipient.
        """
        try:
            helpers, send_token = self.helpers(row["subscriber_id"])
            rendered = self.templates.render(row, helpers)
            email = row["email"]
            try:
                utf8 = sendable_address(email) == SMTPUTF8
            except UnsendableAddress as exc:
                return Outcome("failed", None, "5.1.3", f"the address cannot be sent to: {exc}", cause=Cause.ADDRESS)
            to_name = " ".join(x for x in (row.get("first_name"), row.get("last_name")) if x) or None
            headers = [
                ("From", self.from_header),
                ("To", encode_mailbox(check("To", to_name or ""), check("To", email), len("To: "), utf8)),
                ("Subject", encode_text(check("Subject", rendered.subject), len("Subject: "))),
                ("Date", self._now()),
                # The send token first (replies and DSNs that return only the Message-ID map back); the random part keeps a
                # resend of the same send unique (the token is unique per campaign, recipient and variant)
                ("Message-ID", f"<{send_token}.{os.urandom(4).hex()}@{self.domain}>"),
            ]
            if self.reply_to:
                headers.append(("Reply-To", self.reply_to))
            headers += [
                ("List-Unsubscribe", encode_list([f"<{helpers.unsubscribe_url}>",
                                                  f"<mailto:unsubscribe+{send_token}@{self.bounce_domain}>"],
                                                 len("List-Unsubscribe: "))),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Feedback-ID", self.feedback_id),
                ("X-Mailflow-Send", send_token),
            ]
            mime_head, body = self.mime.write(rendered.text, rendered.html)
            head = "".join([f"{name}: {value}\r\n" for name, value in headers]).encode()
            # Signed from the fields and body as written: nothing to parse back out of the message
            signatures = self.dkim.signatures(headers, body) if self.dkim is not None else b""
            # Every value was checked for line breaks and the MIME writer makes CRLF bodies
            data = CrlfMessage(b"".join((signatures, head, mime_head, b"\r\n", body)))
        except (RenderError, HeaderInjection) as exc:
            return Outcome("failed", None, None, str(exc))
        except (ValueError, UnicodeError) as exc:
            return Outcome("failed", None, None, f"cannot build the message: {type(exc).__name__}")
        return Envelope(f"bounce+{send_token}@{self.bounce_domain}", email, data, utf8)

    def _now(self) -> str:
        second = int(time.time())
        if second != self._date_second:
            self._date_second, self._date = second, format_datetime(datetime.fromtimestamp(second, UTC))
        return self._date
