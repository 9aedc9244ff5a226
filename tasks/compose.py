"""Compose one recipient's message: render, headers (List-Unsubscribe, VERP, trace), MIME, DKIM."""

from __future__ import annotations

import os
import time
from email.utils import format_datetime, parseaddr
from datetime import datetime, timezone
from typing import Any, Mapping

from tasks.campaign import CampaignSpec
from tasks.message import Envelope, HeaderInjection
from tasks.mime import build_mime, check, encode_mailbox, encode_text
from tasks.render import CampaignTemplates, Helpers, RenderError
from tasks.smtp import Outcome
from tasks.tokens import TokenSigner

SEND, UNSUBSCRIBE, VIEW, OPEN, CLICK = "send", "unsubscribe", "view", "open", "click"


class Composer:
    """Everything constant for a campaign variant is prepared here once; compose() does the rest."""

    def __init__(self, spec: CampaignSpec, templates: CampaignTemplates, signer: TokenSigner, base_url: str,
                 bounce_domain: str, dkim=None, variant: str = "A"):
        self.spec, self.templates, self.signer, self.dkim = spec, templates, signer, dkim
        self.base = base_url.rstrip("/")
        self.bounce_domain = bounce_domain
        name, address = parseaddr(spec.from_addr)
        self.domain = address.rpartition("@")[2]
        self.from_header = encode_mailbox(name, address)
        self.reply_to = encode_mailbox(None, parseaddr(spec.reply_to)[1]) if spec.reply_to else None
        # Feedback-ID (Gmail's feedback loop): campaign:variant:stream:sender, stable per campaign.
        self.feedback_id = f"{spec.campaign_id}:{variant}:bulk:mailflow"
        self._date_second, self._date = -1, ""

    def helpers(self, subscriber_id: int) -> tuple[Helpers, str]:
        cid = self.spec.campaign_id
        click = self.signer.sign(cid, subscriber_id, CLICK)
        return Helpers(
            unsubscribe_url=f"{self.base}/u/{self.signer.sign(cid, subscriber_id, UNSUBSCRIBE)}",
            view_url=f"{self.base}/v/{self.signer.sign(cid, subscriber_id, VIEW)}",
            open_url=f"{self.base}/o/{self.signer.sign(cid, subscriber_id, OPEN)}.gif",
            click_url=lambda n: f"{self.base}/c/{click}/{int(n)}",
        ), self.signer.sign(cid, subscriber_id, SEND)

    def compose(self, row: Mapping[str, Any]) -> Envelope | Outcome:
        """The recipient's envelope, or a `failed` outcome saying why it cannot be sent."""
        try:
            helpers, send_token = self.helpers(row["subscriber_id"])
            rendered = self.templates.render(row, helpers)
            to_name = " ".join(x for x in (row.get("first_name"), row.get("last_name")) if x) or None
            headers = [
                ("From", self.from_header),
                ("To", encode_mailbox(check("To", to_name or ""), check("To", row["email"]))),
                ("Subject", encode_text(check("Subject", rendered.subject))),
                ("Date", self._now()),
                ("Message-ID", f"<{os.urandom(16).hex()}@{self.domain}>"),
            ]
            if self.reply_to:
                headers.append(("Reply-To", self.reply_to))
            headers += [
                ("List-Unsubscribe", f"<{helpers.unsubscribe_url}>, "
                                     f"<mailto:unsubscribe+{send_token}@{self.bounce_domain}>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("Feedback-ID", self.feedback_id),
                ("X-Mailflow-Send", send_token),
            ]
            data = build_mime(headers, rendered.text, rendered.html)
            if self.dkim is not None:
                data = self.dkim.sign(data)
        except (RenderError, HeaderInjection) as exc:
            return Outcome("failed", None, None, str(exc))
        except (ValueError, UnicodeError) as exc:
            return Outcome("failed", None, None, f"cannot build the message: {type(exc).__name__}")
        return Envelope(f"bounce+{send_token}@{self.bounce_domain}", row["email"], data)

    def _now(self) -> str:
        second = int(time.time())
        if second != self._date_second:
            self._date_second, self._date = second, format_datetime(datetime.fromtimestamp(second, timezone.utc))
        return self._date
