"""A live tally of a campaign's send ledger: reads only what was appended since the last poll.

`LedgerTally(directory).poll()` returns the recipients by (variant, provider, last status).
Each poll lists the ledger directory, stats each file and parses only the bytes past the
offset it reached before; a torn last line (a writer mid-record, or killed) is left unread
until its newline arrives, and a line that never became whole (ended by the next writer) is
skipped. Every recipient's last status is kept so an `in_flight` mark that turns into an
outcome moves that recipient from one count to the other.

Cost, measured on this 2-core machine while other work loaded it (`python -m bench.tally_bench`:
1,000,000 recipients in 1,000 chunk files, an `in_flight` mark and an outcome each, 2,000,000
records, 630 MB): a poll with nothing new takes 3–7 ms (one stat per file); a poll after 5,000
new records (more than a second of sending at this machine's 2,800–4,300 msgs/s) 20–35 ms,
about 4–7 µs a record, mostly json.loads; so polling every second costs a few per cent of one
core. The first poll of a resumed 1,000,000-recipient campaign reads it all: 8–10 s. The
per-recipient state holds 78 MB at 1,000,000 recipients.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mailflow.tasks.files.ledger import IN_FLIGHT, LEDGER_DIR

OUTCOMES = ("delivered", "deferred", "bounced", "suppressed", "failed")  # as in sql/views/campaign_stats.sql
NO_PROVIDER = "unknown"  # a record written before ledgers carried the provider group

Group = tuple[str, str, str]  # (variant, provider, status)


@dataclass(frozen=True)
class Tally:
    """Recipients by (variant, provider, last status), as of one poll."""

    groups: dict[Group, int]
    records: int = 0  # whole records read so far

    def by(self, axis: str) -> dict[str, dict[str, int]]:
        """Rows of columns() per variant (axis="variant") or per provider (axis="provider")."""
        index = {"variant": 0, "provider": 1}[axis]
        rows: dict[str, Counter] = {}
        for group, n in self.groups.items():
            rows.setdefault(group[index], Counter())[group[2]] += n
        return {name: columns(statuses) for name, statuses in sorted(rows.items())}

    @property
    def totals(self) -> dict[str, int]:
        statuses: Counter = Counter()
        for group, n in self.groups.items():
            statuses[group[2]] += n
        return columns(statuses)

    @property
    def done(self) -> int:
        """Recipients with an outcome (not on the wire, not in doubt)."""
        return sum(n for group, n in self.groups.items() if group[2] != IN_FLIGHT)


def table_rows(tally: Tally) -> list[dict]:
    """The live table: a row per variant, a row per provider, then the total."""
    rows = [{"by": axis, "name": name, **row} for axis in ("variant", "provider")
            for name, row in tally.by(axis).items()]
    return rows + [{"by": "total", "name": "all", **tally.totals}]


def ledger_tally(home: Path, campaign_id: str) -> LedgerTally:
    """A tally of the campaign's ledger directory (tasks/files/ledger.py:ledger_path)."""
    return LedgerTally(home / LEDGER_DIR / campaign_id)


def columns(statuses: Counter) -> dict[str, int]:
    """A row (sent, the OUTCOMES, in_doubt) from last-status counts; `sent` is every recipient with a record.

    A last status of `in_flight` is a message on the wire while the send runs and in doubt
    once it has stopped: the column keeps the warehouse's name for it.
    """
    row = {"sent": sum(statuses.values())}
    row.update({status: statuses.get(status, 0) for status in OUTCOMES})
    row["in_doubt"] = statuses.get(IN_FLIGHT, 0)
    return row


@dataclass
class LedgerTally:
    """Polls one campaign's ledger directory (home/ledger/<campaign_id>/) incrementally."""

    directory: Path
    _offsets: dict[str, int] = field(default_factory=dict)
    _last: dict[int, Group] = field(default_factory=dict)  # subscriber_id -> its last group
    _groups: Counter = field(default_factory=Counter)
    _interned: dict[Group, Group] = field(default_factory=dict)  # one tuple per group, not per recipient
    _records: int = 0

    def poll(self) -> Tally:
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(".ndjson")]
        except FileNotFoundError:  # nothing logged yet
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            offset = self._offsets.get(entry.name, 0)
            if entry.stat().st_size > offset:
                self._offsets[entry.name] = offset + self._read(entry.path, offset)
        return Tally({g: n for g, n in self._groups.items() if n}, self._records)

    def _read(self, path: str, offset: int) -> int:
        """Fold the whole lines past `offset` into the tally; return the bytes consumed."""
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a torn last line waits for its newline
        if end:
            for record in parse_lines(data[:end]):
                self._fold(record)
        return end

    def _fold(self, record: dict) -> None:
        try:
            sid, status = record["subscriber_id"], record["status"]
            group = (str(record["variant"]), record.get("provider") or NO_PROVIDER, status)
        except (KeyError, TypeError):
            return
        group = self._interned.setdefault(group, group)
        previous = self._last.get(sid)
        if previous is not None:
            self._groups[previous] -= 1
        self._last[sid] = group
        self._groups[group] += 1
        self._records += 1


def parse_lines(block: bytes) -> list[dict]:
    """The records of a block of whole lines; lines that are not a JSON object are skipped.

    One json.loads over the block as an array is about twice as fast as one per line; a bad
    line (a torn record ended by the next writer) sends only that block line by line.
    """
    lines = [line for line in block.split(b"\n") if line]
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
        if len(records) != len(lines):
            raise ValueError("a line held more or less than one record")
    except ValueError:
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return [r for r in records if isinstance(r, dict)]
