"""Seeded generator of subscriber CSV files: the demo's sample and the benchmarks' inputs."""

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


if __name__ == "__main__":
    import sys

    write_subscribers(Path(sys.argv[1]), int(sys.argv[2]))
