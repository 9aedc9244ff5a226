"""Seeded generators of subscriber CSV files: the demo's sample and the benchmarks' inputs.

`rows`/`write_subscribers` (the csv module, six columns) made data/samples/subscribers.csv;
`write_subscribers_fast` (NumPy + Polars, ten columns) writes millions of rows in seconds.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

FIRST = ["Aiko", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jonas",
         "Kenji", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Yuki"]
LAST = ["Sato", "Smith", "Müller", "García", "Kim", "Rossi", "Nowak", "Silva", "Tanaka", "Dubois"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "shop.example"]
COUNTRIES = ["JP", "US", "DE", "FR", "BR", "IN", "GB"]
PLANS = ["free", "pro", "team"]
BAD_EMAILS = ["not-an-email", "a@@example.com", "", "x@localhost", "space in@example.com",
              "trailing.dot.@example.com", "user@exa mple.com", "@example.com"]


def rows(n: int, bad_fraction: float = 0.02, seed: int = 7, reject_domain: str = "gone.example",
         reject_fraction: float = 0.01):
    rnd = random.Random(seed)
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        domain = reject_domain if rnd.random() < reject_fraction else rnd.choice(DOMAINS)
        email = f"{first.lower()}.{last.lower()}.{i}@{domain}".encode("ascii", "ignore").decode()
        if rnd.random() < bad_fraction:
            email = rnd.choice(BAD_EMAILS)
        yield {
            "email": email,
            "first_name": first,
            "last_name": last,
            "country": rnd.choice(COUNTRIES),
            "plan": rnd.choice(PLANS),
            "signup_date": f"20{rnd.randint(18, 26)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
        }


def write_subscribers(path: Path, n: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = None
        for row in rows(n, **kwargs):
            if writer is None:
                writer = csv.DictWriter(fh, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    return path


CITIES = ["Tokyo", "Osaka", "New York", "Austin", "Berlin", "München", "Paris", "Lyon", "São Paulo",
          "Mumbai", "Bengaluru", "London", "Leeds", "Kraków", "Seoul", "Roma"]
FAST_BAD_EMAILS = ["not-an-email", "a@@example.com", "", "x@localhost"] + \
    [e for e in BAD_EMAILS if e not in ("not-an-email", "a@@example.com", "", "x@localhost")]
FAST_CHUNK = 1_000_000
OPTED_IN_FROM, OPTED_IN_TO = 1514764800, 1782864000  # 2018-01-01 .. 2026-07-01 UTC (never in the future)
FAST_COLUMNS = ["email", "first_name", "last_name", "country", "plan", "signup_date", "city", "score", "vip",
                "opted_in_at"]


def _ascii_lower(name: str) -> str:
    return name.lower().encode("ascii", "ignore").decode()


def fast_frame(start: int, n: int, rng, bad_fraction: float = 0.015, duplicate_fraction: float = 0.005,
               reject_domain: str = "gone.example", reject_fraction: float = 0.01):
    """Rows start..start+n-1 as a Polars frame of strings (FAST_COLUMNS), drawn from the NumPy `rng`.

    Address i is `first.last.i@domain`, so good addresses are unique across chunks. A
    `bad_fraction` of rows carry an invalid address (FAST_BAD_EMAILS, cycling through them);
    a `duplicate_fraction` repeat the address of a row 1..1000 rows earlier in the same chunk
    (so usually in the same ingest batch), half of them with the domain upper-cased, which
    normalises to the same address.
    """
    import numpy as np
    import polars as pl

    def pick(values: list[str]) -> pl.Series:
        return pl.Series(values).gather(rng.integers(0, len(values), n))

    first_i, last_i = rng.integers(0, len(FIRST), n), rng.integers(0, len(LAST), n)
    first, last = pl.Series(FIRST).gather(first_i), pl.Series(LAST).gather(last_i)
    first_lc = pl.Series([_ascii_lower(x) for x in FIRST]).gather(first_i)  # as `rows` spells addresses
    last_lc = pl.Series([_ascii_lower(x) for x in LAST]).gather(last_i)
    domain = pl.Series(DOMAINS).gather(rng.integers(0, len(DOMAINS), n))
    domain = pl.Series(np.where(rng.random(n) < reject_fraction, reject_domain, domain.to_numpy()), dtype=pl.String)
    number = pl.Series(np.arange(start, start + n, dtype=np.int64))
    opted = rng.integers(OPTED_IN_FROM, OPTED_IN_TO, n)
    frame = pl.DataFrame({
        "first_lc": first_lc, "last_lc": last_lc, "i": number, "domain": domain,
        "first_name": first, "last_name": last, "country": pick(COUNTRIES), "plan": pick(PLANS),
        "y": rng.integers(18, 27, n), "m": rng.integers(1, 13, n), "d": rng.integers(1, 29, n),
        "city": pick(CITIES), "score": rng.integers(0, 10_000, n) / 100, "vip": rng.random(n) < 0.05,
        "opted": pl.Series(opted * 1_000_000, dtype=pl.Int64),
    })
    emails = pl.concat_str("first_lc", pl.lit("."), "last_lc", pl.lit("."), pl.col("i").cast(pl.String), pl.lit("@"),
                           "domain")
    frame = frame.select(
        email=emails,
        first_name="first_name", last_name="last_name", country="country", plan="plan",
        signup_date=pl.format("20{}-{}-{}", "y", pl.col("m").cast(pl.String).str.zfill(2),
                              pl.col("d").cast(pl.String).str.zfill(2)),
        city="city", score=pl.col("score").round(2).cast(pl.String),
        vip=pl.when("vip").then(pl.lit("true")).otherwise(pl.lit("false")),
        opted_in_at=pl.col("opted").cast(pl.Datetime("us")).dt.to_string("%Y-%m-%dT%H:%M:%SZ"),
    )
    email = frame["email"].to_numpy().astype(object)
    roll = rng.random(n)
    bad = np.flatnonzero(roll < bad_fraction)
    email[bad] = np.array(FAST_BAD_EMAILS, dtype=object)[np.arange(bad.size) % len(FAST_BAD_EMAILS)]
    dup = np.flatnonzero((roll >= bad_fraction) & (roll < bad_fraction + duplicate_fraction))
    dup = dup[dup > 0]
    source = np.maximum(dup - rng.integers(1, 1001, dup.size), 0)
    copies = email[source]
    for k in range(0, copies.size, 2):  # every other duplicate differs in the domain's case only
        local, at, host = copies[k].rpartition("@")
        copies[k] = f"{local}{at}{host.upper()}" if at else copies[k]
    email[dup] = copies
    return frame.with_columns(email=pl.Series(email, dtype=pl.String))


def write_subscribers_fast(path: Path, n: int, seed: int = 7, chunk: int = FAST_CHUNK, **kwargs) -> Path:
    """n rows of FAST_COLUMNS to a CSV at `path`, written chunk by chunk; the same seed gives the same file."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with path.open("wb") as fh:
        for start in range(0, n, chunk):
            frame = fast_frame(start, min(chunk, n - start), rng, **kwargs)
            frame.write_csv(fh, include_header=start == 0)
    if n == 0:
        path.write_text(",".join(FAST_COLUMNS) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    # gen_subscribers.py PATH N [fast]
    if sys.argv[3:] == ["fast"]:
        write_subscribers_fast(Path(sys.argv[1]), int(sys.argv[2]))
    else:
        write_subscribers(Path(sys.argv[1]), int(sys.argv[2]))
