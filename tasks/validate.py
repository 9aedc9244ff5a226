"""Address checks: a vectorised fast path for plain ASCII addresses, email-validator for the rest."""

from __future__ import annotations

import polars as pl
from email_validator import EmailNotValidError, validate_email

# The fast path accepts only plain addresses that email-validator is known to accept:
# dot-atom local part of at most 64 characters, LDH domain labels of at most 63, an
# alphabetic TLD. Anything else (quoted locals, IDNA, odd labels) goes to email-validator,
# which decides; a property test checks the fast path never accepts what it rejects.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
FAST_PATTERN = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
# email-validator refuses special-use domains and IDNA-reserved label shapes: leave them to it.
_SLOW_DOMAIN = r"(?i)(?:^|\.)(?:arpa|invalid|local|localhost|onion|test)$|--"


def fast_path_ok(emails: pl.Expr) -> pl.Expr:
    """True where the address is certainly valid without calling email-validator."""
    local = emails.str.split_exact("@", 1).struct.field("field_0")
    domain = emails.str.split_exact("@", 1).struct.field("field_1")
    return (
        emails.str.contains(FAST_PATTERN)
        & (local.str.len_bytes() <= 64)
        & (emails.str.len_bytes() <= 254)
        & (domain.str.len_bytes() <= 253)
        & ~domain.str.contains(_SLOW_DOMAIN)
    )


def check_address(address: str) -> tuple[str | None, str | None]:
    """(normalised address, None) when valid, else (None, the reason) — the reference check."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid_email: {exc}"
    return result.normalized, None


def check_addresses(df: pl.DataFrame, column: str = "email") -> pl.DataFrame:
    """Add `email_ok` (normalised address or null) and `email_error`, fast path first."""
    df = df.with_columns(_fast=fast_path_ok(pl.col(column)).fill_null(False))
    slow = df.filter(~pl.col("_fast")).get_column(column).to_list()
    checked = [check_address(a) if a else (None, "missing_email: the email field is empty") for a in slow]
    slow_ok = pl.Series("_slow_ok", [c[0] for c in checked], dtype=pl.String)
    slow_err = pl.Series("_slow_err", [c[1] for c in checked], dtype=pl.String)
    fast = df.filter(pl.col("_fast")).with_columns(
        email_ok=_lower_domain(pl.col(column)), email_error=pl.lit(None, pl.String)
    )
    rest = df.filter(~pl.col("_fast")).with_columns(email_ok=slow_ok, email_error=slow_err)
    return pl.concat([fast, rest]).sort("line").drop("_fast")


def _lower_domain(emails: pl.Expr) -> pl.Expr:
    parts = emails.str.split_exact("@", 1)
    return pl.concat_str(parts.struct.field("field_0"), pl.lit("@"), parts.struct.field("field_1").str.to_lowercase())
