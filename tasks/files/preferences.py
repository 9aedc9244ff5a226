"""Subscribers' current lists and frequency as aggregate publishes them for the preference centre.

The tracking service never opens the warehouse (DESIGN.md principle 1), so the aggregate stage
writes `published/preferences.parquet`: subscriber_id, lists, frequency, sorted by subscriber_id
in row groups of ROW_GROUP rows. A lookup reads the file's footer once (kept until the file is
replaced) and then the one row group whose subscriber_id range holds the id.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mailflow.tasks.files.atomic import atomic_write

PREFERENCES = Path("published") / "preferences.parquet"
ROW_GROUP = 16_384  # 10M subscribers: 611 groups, a footer of a few hundred KB; a lookup reads ~200 KB


@dataclass(frozen=True)
class Preferences:
    lists: tuple[str, ...]
    frequency: str | None


def preferences_path(home: Path) -> Path:
    return home / PREFERENCES


def write_preferences(home: Path, frame: pl.DataFrame) -> Path:
    """Replace the published file atomically with `frame` (subscriber_id, lists, frequency)."""
    path = preferences_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = frame.select("subscriber_id", "lists", "frequency").sort("subscriber_id").to_arrow()
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, row_group_size=ROW_GROUP, write_statistics=True))


class PreferenceReader:
    """Looks subscribers up in the published file; None when there is no file or no row for the id."""

    def __init__(self, home: Path):
        self.path = preferences_path(home)
        self._file: pq.ParquetFile | None = None
        self._identity: tuple | None = None
        self._ranges: list[tuple[int, int]] = []
        self._lock = threading.Lock()  # lookups run in worker threads; one ParquetFile is read by one at a time

    def lookup(self, subscriber_id: int) -> Preferences | None:
        """Blocking file reads: call it off the event loop."""
        with self._lock:
            return self._lookup(subscriber_id)

    def _lookup(self, subscriber_id: int) -> Preferences | None:
        parquet = self._open()
        if parquet is None:
            return None
        for group, (low, high) in enumerate(self._ranges):
            if low <= subscriber_id <= high:
                table = parquet.read_row_group(group)
                rows = table.filter(pc.equal(table["subscriber_id"], subscriber_id)).to_pylist()
                if rows:
                    return Preferences(tuple(rows[0]["lists"] or ()), rows[0]["frequency"])
        return None

    def _open(self) -> pq.ParquetFile | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._file, self._identity = None, None
            return None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if identity != self._identity:  # aggregate replaced it: read the new footer
            parquet = pq.ParquetFile(self.path)
            column = parquet.schema_arrow.get_field_index("subscriber_id")
            ranges = []
            for group in range(parquet.metadata.num_row_groups):
                stats = parquet.metadata.row_group(group).column(column).statistics
                ranges.append((stats.min, stats.max) if stats is not None and stats.has_min_max else (-1, -1))
            self._file, self._identity, self._ranges = parquet, identity, ranges
        return self._file
