"""What every subscriber-file reader yields: batches of text rows, rows refused unparsed, and header names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

BATCH_ROWS = 500_000


@dataclass(frozen=True)
class Rejected:
    """A row refused before screening (it could not be parsed), standing for `copies` identical rows."""

    line: int                  # of the first copy
    reason: str
    raw: str                   # the row's text; already shortened when `sha256` is given
    copies: int = 1
    sha256: str | None = None  # of the whole text, when `raw` holds only its start


@dataclass
class Batch:
    """Rows of one file as text: `frame` has one column per field plus `line`; `rejected` rows failed to parse.

    A frame row may stand for several identical records (`copies`, the first at `first_lines`);
    its `line` is then the last copy's, the one a later row of the same address is compared to."""

    frame: pl.DataFrame
    raw: Callable[[list[int]], list[str]]          # original text of rows, by position in `frame`
    rejected: list[Rejected] = field(default_factory=list)
    copies: np.ndarray | None = None               # per frame row; None: one each
    first_lines: np.ndarray | None = None


def header_names(raw: list[str]) -> list[str]:
    """Lower-case identifiers: `E-Mail Address` -> `e_mail_address`; blanks and repeats made unique (`a`, `a_2`, `a_3`).

    Linear in the number of names: a set answers "taken?" and each name's next suffix is remembered."""
    names: list[str] = []
    taken: set[str] = set()
    suffix: dict[str, int] = {}
    for i, name in enumerate(raw):
        clean = re.sub(r"[^0-9a-z]+", "_", unicodedata.normalize("NFKC", name or "").strip().lower()).strip("_")
        clean = clean or f"column_{i + 1}"
        if clean in taken:
            n = suffix.get(clean, 2)
            while f"{clean}_{n}" in taken:
                n += 1
            suffix[clean] = n + 1
            clean = f"{clean}_{n}"
        taken.add(clean)
        names.append(clean)
    return names
