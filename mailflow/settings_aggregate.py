"""The `[aggregate]` settings: the memory DuckDB may use while loading logs into the warehouse (tasks/aggregate/)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailflow.errors import MailflowError

DEFAULTS: dict[str, Any] = {"memory_limit": "50%"}
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(%|[KMGT]i?B)", re.IGNORECASE)


@dataclass(frozen=True)
class AggregateSettings:
    # DuckDB's memory limit while aggregating: a share of the machine's RAM ("50%") or an amount
    # ("8GB"). Beyond it DuckDB spills to disk next to the warehouse, and a load of 10M events then
    # takes minutes instead of seconds; 10M events and 1M ledger records fit in about 6 GB.
    memory_limit: str = "50%"


def aggregate_settings(tree: dict[str, Any]) -> AggregateSettings:
    limit = str(tree["memory_limit"]).strip()
    if not _MEMORY.fullmatch(limit):
        raise MailflowError(f"settings: aggregate.memory_limit {limit!r} is not a share of RAM (\"50%\") "
                            "or an amount (\"8GB\")")
    return AggregateSettings(memory_limit=limit)
