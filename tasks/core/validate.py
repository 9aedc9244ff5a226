"""Address checks: a vectorised fast path for plain ASCII addresses, email-validator for the rest.

sendable_address() is the one decision ingest and send share: an address ingest keeps can be sent.
"""

from __future__ import annotations

import re

import polars as pl
from email_validator import EmailNotValidError, validate_email

# The fast path accepts only plain addresses that email-validator is known to accept:
# dot-atom local part of at most 64 characters, LDH domain labels of at most 63, an
# alphabetic TLD. Anything else (quoted locals, IDNA, odd labels) goes to email-validator,
# which decides; a property test checks the fast path never accepts what it rejects.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FAST_ADDRESS = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}"
FAST_PATTERN = f"^{_FAST_ADDRESS}$"
# email-validator refuses special-use domains and IDNA-reserved label shapes: leave them to it.
_SLOW_DOMAIN = r"(?i)(?:^|\.)(?:arpa|invalid|local|localhost|onion|test)$|--"
_FAST_ONE, _SLOW_DOMAIN_ONE = re.compile(_FAST_ADDRESS), re.compile(_SLOW_DOMAIN)  # the same, one address at a time

ASCII, SMTPUTF8 = "ascii", "smtputf8"  # how an address is sent: through any relay, or only with RFC 6531


class UnsendableAddress(ValueError):
    """No relay can take this address; the message says why (without the address)."""


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


def sendable_address(address: str) -> str:
    """ASCII when any relay can take the address; SMTPUTF8 when only a relay that offers SMTPUTF8
    can (RFC 6531: a non-ASCII local part, or a domain IDNA could not turn into ASCII at ingest);
    UnsendableAddress when none can. Ingest and send both ask this, so they never disagree."""
    if len(address) <= 254 and _FAST_ONE.fullmatch(address):  # the vectorised fast path, one address at a time
        local, _, domain = address.rpartition("@")
        if len(local) <= 64 and not _SLOW_DOMAIN_ONE.search(domain):
            return ASCII
    _, error = check_address(address)
    if error is not None:
        raise UnsendableAddress(error)
    return ASCII if address.isascii() else SMTPUTF8


def check_address(address: str) -> tuple[str | None, str | None]:
    """(normalised address, None) when valid, else (None, the reason) — the reference check."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid_email: {exc}"
    return result.normalized, None


def check_addresses(df: pl.DataFrame, column: str = "email") -> pl.DataFrame:
    """Add `email_error` (null when sendable) and `needs_smtputf8`: the fast path first (plain
    ASCII, sendable anywhere), sendable_address() for the rest.

    Addresses arrive already canonical (mailflow.tasks.ingest.normalise); this only judges them.
    """
    df = df.with_columns(_fast=fast_path_ok(pl.col(column)).fill_null(False))
    slow = df.filter(~pl.col("_fast")).get_column(column).to_list()
    verdicts = [_verdict(a) for a in slow]
    slow_err = pl.Series("email_error", [error for error, _ in verdicts], dtype=pl.String)
    slow_utf8 = pl.Series("needs_smtputf8", [utf8 for _, utf8 in verdicts], dtype=pl.Boolean)
    fast = df.filter(pl.col("_fast")).with_columns(email_error=pl.lit(None, pl.String), needs_smtputf8=pl.lit(False))
    rest = df.filter(~pl.col("_fast")).with_columns(slow_err, slow_utf8)
    return pl.concat([fast, rest]).sort("line").drop("_fast")


def _verdict(address: str | None) -> tuple[str | None, bool]:
    if not address:
        return "missing_email: the email field is empty", False
    try:
        return None, sendable_address(address) == SMTPUTF8
    except UnsendableAddress as exc:
        return str(exc), False


ROLE_ACCOUNTS = frozenset(
    "abuse admin administrator billing compliance contact enquiries help hello hostmaster info inquiries "
    "mail mailer-daemon marketing news newsletter no-reply noc noreply office postmaster privacy root "
    "sales security support sysadmin team webmaster".split()
)
CONTROL_CHARS = r"[\x00-\x08\x0a-\x1f\x7f-\x9f\x{2028}\x{2029}]"  # C0, DEL, C1 (NEL), line separators
FIELD_LIMIT = 4096  # bytes per field: more is a broken export, not a name


def field_errors(df: pl.DataFrame, fields: list[str], field_limit: int = FIELD_LIMIT) -> pl.DataFrame:
    """Add `row_error`: the first field that is too long or carries a line break or control character."""
    errors = []
    for column in fields:
        errors.append(pl.when(pl.col(column).str.len_bytes() > field_limit).then(
            pl.format(f"field_too_long: field {column} is {{}} bytes (limit {field_limit})", pl.col(column).str.len_bytes())))
        errors.append(pl.when(pl.col(column).str.contains(CONTROL_CHARS)).then(
            pl.lit(f"control_characters: field {column} has a line break or control character")))
    return df.with_columns(row_error=pl.coalesce(errors) if errors else pl.lit(None, pl.String))


def address_flags(df: pl.DataFrame) -> pl.DataFrame:
    """Add `is_role_account` (info@, support@ ...) and `is_disposable` (a throwaway-address domain)."""
    from disposable_email_domains import blocklist

    parts = pl.col("email").str.split_exact("@", 1)
    local, domain = parts.struct.field("field_0").str.to_lowercase(), parts.struct.field("field_1")
    return df.with_columns(
        is_role_account=local.is_in(list(ROLE_ACCOUNTS)).fill_null(False),
        is_disposable=domain.is_in(list(blocklist)).fill_null(False),
    )
