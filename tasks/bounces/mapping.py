"""Bounce → send: which campaign and subscriber a bounced recipient was mailed by, from files only (never the warehouse)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import polars as pl

from mailflow.tasks.compose.tokens import BadToken, TokenSigner, campaign_digest
from mailflow.tasks.files.ledger import LEDGER_DIR
from mailflow.tasks.files.manifest import MANIFEST, campaign_dir, chunk_entries

_TOKEN = re.compile(r"(?<![a-z2-7])[a-z2-7]{40}(?![a-z2-7])|(?<![A-Z2-7])[A-Z2-7]{40}(?![A-Z2-7])")


@dataclass(frozen=True)
class SendMatch:
    campaign_id: str
    subscriber_id: int
    variant: str | None
    via: str  # how it was found: return_path | trace_header | message_id | in_reply_to | recipient | mailto


@dataclass(frozen=True)
class _Sent:
    campaign_id: str
    subscriber_id: int
    variant: str | None
    logged_at: str


class SendIndex:
    """What `home` knows of past sends: campaign ids by digest (the ledger's folder names), and, built on first
    need and once per run, the recipients each ledger logged, matched to their addresses in the campaign's chunks.

    `signer` is None when no token secret is set: then tokens are not believed and only recipients match."""

    def __init__(self, home: Path, signer: TokenSigner | None):
        self.home, self.signer = home, signer
        ledgers = home / LEDGER_DIR
        names = sorted(p.name for p in ledgers.iterdir() if p.is_dir()) if ledgers.is_dir() else []
        self.campaigns = {campaign_digest(name): name for name in names}
        self._by_email: dict[str, _Sent] = {}
        self._variants: dict[tuple[str, int], str | None] = {}
        self._emails: dict[tuple[str, int], str] = {}
        self._indexed: set[str] = set()

    def match(self, return_path_token: str | None, original_headers: dict, recipient: str | None) -> SendMatch | None:
        """The send a bounce belongs to: a signed token first (the VERP return path, the trace header, the returned
        Message-ID, then the In-Reply-To/References an auto-reply carries), the bounced address in the ledgers
        last; None when nothing matches (the caller reports it as unmapped)."""
        replied = " ".join(filter(None, (_header(original_headers, "In-Reply-To"), _header(original_headers, "References"))))
        for token, via in ((return_path_token, "return_path"), (_header(original_headers, "X-Mailflow-Send"), "trace_header"),
                           (_header(original_headers, "Message-ID"), "message_id"), (replied, "in_reply_to")):
            found = self._by_token(token, via) if token else None
            if found:
                return found
        if recipient:
            sent = self._recipients().get(bare_address(recipient))
            if sent:
                return SendMatch(sent.campaign_id, sent.subscriber_id, sent.variant, "recipient")
        return None

    def unsubscriber(self, token: str) -> tuple[SendMatch, str | None] | None:
        """The send a `mailto:unsubscribe+TOKEN@` names (compose puts the send token there; an unsubscribe
        token is believed too) and the address it was sent to (None when its chunk file is gone)."""
        found = self._by_token(token, "mailto", ("send", "unsubscribe"))
        return None if found is None else (found, self._emails.get((found.campaign_id, found.subscriber_id)))

    def _by_token(self, text: str, via: str, purposes: tuple[str, ...] = ("send",)) -> SendMatch | None:
        if self.signer is None:
            return None
        for token in _TOKEN.findall(text):
            ref = _verified(self.signer, token, purposes)
            if ref is None:
                continue
            campaign = self.campaigns.get(ref.campaign_digest)
            if campaign is not None:
                self._index_campaign(campaign)  # the variant's name lives in the chunks
                return SendMatch(campaign, ref.subscriber_id, self._variants.get((campaign, ref.subscriber_id)), via)
        return None

    def _recipients(self) -> dict[str, _Sent]:
        for campaign in self.campaigns.values():
            self._index_campaign(campaign)
        return self._by_email

    def _index_campaign(self, campaign: str) -> None:
        """Once per campaign: its logged recipients by address (kept the latest), and their variants."""
        if campaign in self._indexed:
            return
        self._indexed.add(campaign)
        logged = _logged_at(self.home / LEDGER_DIR / campaign)
        chunks = [p for p in _chunk_files(campaign_dir(self.home, campaign)) if p.is_file()]
        if not logged or not chunks:
            return
        try:
            frame = pl.concat([pl.read_parquet(p, columns=["subscriber_id", "email", "variant"]) for p in chunks],
                              how="vertical_relaxed")
        except (OSError, pl.exceptions.PolarsError):
            return  # a campaign whose chunks cannot be read maps by token only
        for sid, address, variant in frame.iter_rows():
            at = logged.get(sid)
            if at is None:
                continue  # planned but never attempted: it cannot have bounced
            self._variants[(campaign, sid)] = variant
            self._emails[(campaign, sid)] = str(address)
            key = str(address).lower()
            known = self._by_email.get(key)
            if known is None or at > known.logged_at:  # the latest send to the address is the one that bounced
                self._by_email[key] = _Sent(campaign, sid, variant, at)


def _chunk_files(folder: Path) -> list[Path]:
    """The chunk files the campaign's manifest lists (a re-plan writes a new folder of them); chunks/ without one."""
    try:
        return [folder / entry.file for entry in chunk_entries(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted((folder / "chunks").glob("*.parquet"))


def _verified(signer: TokenSigner, token: str, purposes: tuple[str, ...]):
    for purpose in purposes:
        try:
            return signer.verify(token, purpose)
        except BadToken:
            continue
    return None


def _logged_at(folder: Path) -> dict[int, str]:
    """The last time each subscriber was logged in a campaign's ledger files."""
    last: dict[int, str] = {}
    for path in sorted(folder.glob("*.ndjson")):
        with path.open("rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    sid, at = int(record["subscriber_id"]), str(record.get("logged_at") or "")
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line
                if at >= last.get(sid, ""):
                    last[sid] = at
    return last


def bare_address(recipient: str) -> str:
    """`Ann <ANN@example.com>` and `<ann@example.com>` as `ann@example.com`: how addresses are compared and suppressed."""
    return (parseaddr(recipient)[1] or recipient).strip().strip("<>").lower()


def _header(headers: dict, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None
