"""Campaigns as the service finds them without the warehouse: by token digest under home/campaigns, with links and recipients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import polars as pl

from mailflow.tasks.compose.tokens import campaign_digest
from mailflow.tasks.files.manifest import MANIFEST, chunk_entries
from mailflow.tasks.files.suppress import file_id

LINKS = "links.json"
_RESCAN_SECONDS = 1.0  # an unknown digest rescans the campaign folders at most this often: forged tokens cost nothing
_RECHECK_SECONDS = 1.0  # a changed links.json or manifest is seen within this
_CHUNKS_KEPT = 8  # chunk files kept read: a burst of unsubscribes reads each once


@dataclass
class CampaignFiles:
    """A planned campaign's files: `spec` (the manifest's), `links` (links.json, by index), the chunk files."""

    campaign_id: str
    dir: Path
    spec: dict
    links: list[str]
    chunks: tuple[Path, ...]
    stamp: tuple = ()  # the files' identity when read: a change means read again
    checked_until: float = 0.0  # the files are looked at again after this (the index's clock)
    _urls: dict = field(default_factory=dict, repr=False)

    def variant_name(self, index: int | None) -> str | None:
        """The name of the variant a token's index names; a campaign without variants has one, A."""
        variants = self.spec.get("variants") or []
        if not variants:
            return "A" if index in (None, 0) else None
        return variants[index]["name"] if index is not None and 0 <= index < len(variants) else None

    def tracked_url(self, url: str, variant: str | None) -> str:
        """`url` with the campaign's UTM parameters appended (those the URL has already win)."""
        key = (url, variant)
        if key not in self._urls:
            self._urls[key] = with_utm(url, (self.spec.get("tracking") or {}).get("utm") or {}, self.campaign_id, variant)
        return self._urls[key]


def with_utm(url: str, utm: dict[str, str], campaign_id: str, variant: str | None) -> str:
    """`utm_source=...` for each key of `utm`, `{campaign}` and `{variant}` filled in, before any #fragment."""
    if not utm:
        return url
    base, hash_, fragment = url.partition("#")
    _, _, query = base.partition("?")
    present = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    extra = [(f"utm_{key}", value.replace("{campaign}", campaign_id).replace("{variant}", variant or ""))
             for key, value in utm.items() if f"utm_{key}" not in present]
    if not extra:
        return url
    joiner = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{joiner}{urlencode(extra)}{hash_}{fragment}"


class CampaignIndex:
    """`find(digest) -> CampaignFiles | None` (cached, read again within a second of a file's change) and
    `await recipient(campaign, subscriber_id) -> dict | None` (off the event loop)."""

    def __init__(self, home: Path, clock=time.monotonic):
        self.root, self.clock = home / "campaigns", clock
        self._ids: dict[bytes, str] = {}
        self._next_scan = 0.0
        self._files: dict[str, CampaignFiles] = {}
        self._indexes: dict[str, tuple[tuple, asyncio.Future]] = {}
        self._rows: OrderedDict[Path, pl.DataFrame] = OrderedDict()
        self._rows_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="recipients")

    def find(self, digest: bytes) -> CampaignFiles | None:
        campaign_id = self._ids.get(digest)
        if campaign_id is None:
            if self.clock() < self._next_scan:
                return None
            self._next_scan = self.clock() + _RESCAN_SECONDS
            self._scan()
            campaign_id = self._ids.get(digest)
            if campaign_id is None:
                return None
        return self._load(campaign_id)

    def _scan(self) -> None:
        try:
            names = [p.name for p in self.root.iterdir() if p.is_dir()]
        except FileNotFoundError:
            names = []
        self._ids = {campaign_digest(name): name for name in names}

    def _load(self, campaign_id: str) -> CampaignFiles | None:
        cached = self._files.get(campaign_id)
        now = self.clock()
        if cached is not None and now < cached.checked_until:  # two stats a request cost a fifth of an open's time
            return cached
        folder = self.root / campaign_id
        stamp = (file_id(folder / MANIFEST), file_id(folder / LINKS))
        if cached is not None and cached.stamp == stamp:
            cached.checked_until = now + _RECHECK_SECONDS
            return cached
        if stamp[0] is None:  # no manifest (yet): not a planned campaign
            self._files.pop(campaign_id, None)
            return None
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            links = json.loads((folder / LINKS).read_text(encoding="utf-8"))["links"] if stamp[1] else []
        except FileNotFoundError:  # replaced between stat and read: the next request reads the new one
            return cached
        chunks = tuple(folder / entry.file for entry in chunk_entries(manifest))
        self._files[campaign_id] = CampaignFiles(campaign_id, folder, manifest["spec"], list(links), chunks, stamp,
                                                 now + _RECHECK_SECONDS)
        return self._files[campaign_id]

    async def recipient(self, campaign: CampaignFiles, subscriber_id: int) -> dict | None:
        """The recipient's row from its chunk file (subscriber_id, chunk_id, variant, email, names, attributes)."""
        loop = asyncio.get_running_loop()
        known = self._indexes.get(campaign.campaign_id)
        if known is None or known[0] != campaign.stamp[0]:
            known = self._indexes[campaign.campaign_id] = (
                campaign.stamp[0], loop.run_in_executor(self._pool, RecipientIndex.build, campaign.chunks))
        try:
            index = await asyncio.shield(known[1])
        except Exception:
            self._indexes.pop(campaign.campaign_id, None)  # the next request tries again
            raise
        path = index.chunk_of(subscriber_id)
        if path is None:
            return None
        return await loop.run_in_executor(self._pool, self._row, path, subscriber_id)

    def _row(self, path: Path, subscriber_id: int) -> dict | None:
        with self._rows_lock:
            frame = self._rows.pop(path, None)
        if frame is None:
            frame = pl.read_parquet(path)
        with self._rows_lock:
            self._rows[path] = frame
            while len(self._rows) > _CHUNKS_KEPT:
                self._rows.popitem(last=False)
        rows = frame.filter(pl.col("subscriber_id") == subscriber_id).to_dicts()
        return rows[0] if rows else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class RecipientIndex:
    """subscriber_id -> chunk file, built once per plan from the chunks' id columns: sorted ids and
    their files' positions (about 12 bytes a recipient), looked up by binary search."""

    ids: pl.Series
    files: pl.Series
    paths: tuple[Path, ...]

    @classmethod
    def build(cls, paths: tuple[Path, ...]) -> RecipientIndex:
        present = [(i, p) for i, p in enumerate(paths) if p.exists()]
        if not present:
            return cls(pl.Series("subscriber_id", [], pl.Int64), pl.Series("file", [], pl.Int32), paths)
        frame = pl.concat([pl.scan_parquet(p).select(pl.col("subscriber_id").cast(pl.Int64), pl.lit(i, pl.Int32).alias("file"))
                           for i, p in present]).sort("subscriber_id").collect()
        return cls(frame["subscriber_id"], frame["file"], paths)

    def chunk_of(self, subscriber_id: int) -> Path | None:
        at = self.ids.search_sorted(subscriber_id)
        if at < len(self.ids) and self.ids[at] == subscriber_id:
            return self.paths[self.files[at]]
        return None
