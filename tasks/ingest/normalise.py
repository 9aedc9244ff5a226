"""Normalise subscriber rows (vectorised Polars): column mapping, trim, NFC, address forms, typed attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from mailflow.errors import MailflowError
from mailflow.tasks.ingest.readers import header_names

# Columns mailflow keeps in their own fields; everything else lands in `attributes`.
KNOWN = ("email", "first_name", "last_name", "status", "opted_in_at", "consent_source", "double_opt_in", "opt_out")
# Opt-out columns as CRMs and list managers export them (after header_names: `Do Not Email` -> do_not_email).
OPT_OUT_COLUMNS = ("unsubscribed", "unsubscribe", "optout", "opted_out", "optedout", "do_not_email", "donotemail",
                   "do_not_mail", "email_opt_out", "emailoptout", "has_opted_out_of_email", "hasoptedoutofemail",
                   "unsubscribed_from_all_email")
ALIASES = {"e_mail": "email", "email_address": "email", "mail": "email", "firstname": "first_name",
           "lastname": "last_name", "source": "consent_source", "optin_at": "opted_in_at"} | dict.fromkeys(OPT_OUT_COLUMNS, "opt_out")
TYPES = ("string", "integer", "number", "boolean", "date", "datetime")
# Providers that treat the local part case-insensitively: there `Ann@` and `ann@` are one mailbox.
CASELESS_PROVIDERS = ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
                      "yahoo.com", "ymail.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net",
                      "web.de", "yandex.ru", "mail.ru", "proton.me", "protonmail.com")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
# An opt-out column is often a spreadsheet's tick box. Any other non-empty value is not read as "no":
# the row is quarantined (bad_value) and still counts as an opt-out — mailing someone who opted out is
# the mistake that cannot be taken back.
OPT_OUT_TRUE = (*_TRUE, "x", "on", "\u2713", "\u2714")
OPT_OUT_FALSE = (*_FALSE, "off")
# Status spellings of an unsubscribe that other tools export; GX then sees the canonical value.
STATUS_SYNONYMS = dict.fromkeys(("unsubscribe", "opted_out", "opted-out", "opt-out", "opt_out", "optout"), "unsubscribed")


@dataclass(frozen=True)
class Mapping_:
    """How a file's columns map to mailflow's: `columns` renames, `types` types attributes."""

    columns: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def load_mapping(path: Path | None, pairs: tuple[str, ...] = ()) -> Mapping_:
    """From a YAML file ({columns: {From: to}, types: {col: date}}) and `--map From=to` pairs."""
    columns: dict[str, str] = {}
    types: dict[str, str] = {}
    if path:
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MailflowError(f"{path}: cannot read the column mapping ({str(exc).splitlines()[0]})") from None
        if not isinstance(spec, dict) or not set(spec) <= {"columns", "types"}:
            raise MailflowError(f"{path}: a mapping file has `columns:` and `types:` sections only")
        columns.update({str(k): str(v) for k, v in (spec.get("columns") or {}).items()})
        types.update({header_names([str(k)])[0]: str(v) for k, v in (spec.get("types") or {}).items()})
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise MailflowError(f"--map {pair!r}: expected SOURCE=TARGET, e.g. --map 'E-mail=email'")
        columns[source.strip()] = target.strip()
    for name, kind in types.items():
        if kind not in TYPES:
            raise MailflowError(f"mapping: type {kind!r} of column {name!r} is not one of {', '.join(TYPES)}")
    return Mapping_(columns, types)


def rename_columns(frame: pl.DataFrame, raw_header: list[str], mapping: Mapping_) -> pl.DataFrame:
    """Apply the mapping (by original or normalised header name), then the built-in aliases."""
    by_raw = dict(zip(header_names(raw_header), raw_header)) if raw_header else {}
    by_name = {header_names([source])[0]: target for source, target in mapping.columns.items()}  # JSON: no header
    renames = {}
    for column in frame.columns:
        if column == "line":
            continue
        original = by_raw.get(column, column)
        target = (mapping.columns.get(original) or mapping.columns.get(column) or by_name.get(column)
                  or ALIASES.get(column))
        if target:
            renames[column] = header_names([target])[0]
    opt_outs = [c for c in frame.columns if renames.get(c, c) == "opt_out"]
    if len(opt_outs) > 1:  # `unsubscribed` and `Do Not Email` in one export: either one opts out
        frame = frame.with_columns(_merge_opt_outs(opt_outs)).drop(c for c in opt_outs if c != "opt_out")
        renames = {c: t for c, t in renames.items() if c not in opt_outs}
    targets = [renames.get(c, c) for c in frame.columns]
    if len(set(targets)) != len(targets):
        raise MailflowError("mapping: two columns map to the same name")
    return frame.rename(renames)


def _merge_opt_outs(columns: list[str]) -> pl.Expr:
    """One opt-out value from several columns: yes if any is ticked, else the first that is not a plain no."""
    values = [pl.col(c).str.strip_chars() for c in columns]
    lows = [v.str.to_lowercase() for v in values]
    ticked = pl.any_horizontal([low.is_in(OPT_OUT_TRUE) for low in lows])
    unclear = [pl.when((low.str.len_bytes() > 0) & ~low.is_in(OPT_OUT_FALSE)).then(v) for low, v in zip(lows, values)]
    return pl.when(ticked).then(pl.lit("yes")).otherwise(pl.coalesce(*unclear, *values)).alias("opt_out")


def normalise(frame: pl.DataFrame, mapping: Mapping_, fields: list[str] | None = None) -> pl.DataFrame:
    """Trimmed NFC text; `email` in its canonical form, `email_original` as given; attributes JSON.

    `fields` are the file's columns (default: all but `line`); other columns pass through.
    """
    fields = fields if fields is not None else [c for c in frame.columns if c != "line"]
    frame = nfc(frame.with_columns(pl.col(fields).str.strip_chars()), fields)
    frame = frame.with_columns(pl.when(pl.col(fields).str.len_bytes() > 0).then(pl.col(fields)).name.keep())
    for column in KNOWN:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(column))
    frame = frame.with_columns(email_original=pl.col("email"), email=canonical_email(pl.col("email")))
    extra = [c for c in fields if c not in KNOWN]
    typed, errors = _typed(frame, {c: mapping.types.get(c, "string") for c in extra})
    attributes = pl.struct(typed).struct.json_encode() if typed else pl.lit("{}")
    return frame.with_columns(attributes=attributes, type_error=errors).drop(extra)


def nfc(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Unicode NFC, applied only to rows with non-ASCII text (ASCII is NFC already; saves ~1 s per million)."""
    if not fields or not frame.height:
        return frame
    non_ascii = pl.any_horizontal([(pl.col(c).str.len_bytes() != pl.col(c).str.len_chars()).fill_null(False) for c in fields])
    rows = frame.select(non_ascii.arg_true()).to_series()
    if rows.is_empty():
        return frame
    fixed = frame[rows].select(pl.col(fields).str.normalize("NFC"))
    return frame.with_columns(frame[c].scatter(rows, fixed[c]) for c in fields)


def canonical_email(email: pl.Expr) -> pl.Expr:
    """Domain lower-cased (and IDNA-encoded, see idna_domains); local part lower-cased only at caseless providers."""
    parts = email.str.split_exact("@", 1)
    local, domain = parts.struct.field("field_0"), parts.struct.field("field_1").str.to_lowercase().str.strip_chars_end(".")
    local = pl.when(domain.is_in(CASELESS_PROVIDERS)).then(local.str.to_lowercase()).otherwise(local)
    return pl.when(email.str.count_matches("@") == 1).then(pl.concat_str(local, pl.lit("@"), domain)).otherwise(email)


def idna_domains(frame: pl.DataFrame) -> pl.DataFrame:
    """International domains to their ASCII (xn--) form; a domain IDNA refuses is left for the address check."""
    domain = pl.col("email").str.split_exact("@", 1).struct.field("field_1")
    odd = frame.filter(domain.str.contains(r"[^\x00-\x7f]")).select(domain.alias("d")).unique()["d"].to_list()
    if not odd:
        return frame
    ascii_of = {}
    for name in odd:
        try:
            ascii_of[name] = name.encode("idna").decode("ascii")
        except UnicodeError:
            continue
    local = pl.col("email").str.split_exact("@", 1).struct.field("field_0")
    mapped = domain.replace(ascii_of)
    return frame.with_columns(email=pl.when(domain.is_in(list(ascii_of))).then(pl.concat_str(local, pl.lit("@"), mapped))
                              .otherwise(pl.col("email")))


def _typed(frame: pl.DataFrame, types: Mapping[str, str]) -> tuple[list[pl.Expr], pl.Expr]:
    """Typed attribute expressions, and the first `bad_value` message per row (or null)."""
    exprs, errors = [], []
    for column, kind in types.items():
        value, ok = _cast(pl.col(column), kind)
        exprs.append(value.alias(column))
        errors.append(pl.when(pl.col(column).is_not_null() & ~ok).then(pl.lit(f"bad_value: field {column} is not a {kind}")))
    return exprs, (pl.coalesce(errors) if errors else pl.lit(None, pl.String))


def _cast(col: pl.Expr, kind: str) -> tuple[pl.Expr, pl.Expr]:
    if kind == "integer":
        value = col.cast(pl.Int64, strict=False)
    elif kind == "number":
        value = col.cast(pl.Float64, strict=False)
    elif kind == "boolean":
        low = col.str.to_lowercase()
        value = pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False).otherwise(None)
    elif kind == "date":
        value = col.str.to_date(strict=False).cast(pl.String)
    elif kind == "datetime":
        value = parse_timestamp(col).dt.to_string("%Y-%m-%dT%H:%M:%S%z")  # typed attributes: rare, full pass
    else:
        return col, pl.lit(True)
    return value, value.is_not_null()


def parse_timestamp(col: pl.Expr) -> pl.Expr:
    """ISO dates and date-times, with or without zone (naive ones are UTC), to a UTC timestamp."""
    col = col.str.replace(r"[Zz]$", "+00:00")
    return pl.coalesce(
        col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC"),
        col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_zone="UTC"),
        col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC"),
        col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC"),
        col.str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False).dt.replace_time_zone("UTC"),
        col.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.replace_time_zone("UTC"),
        col.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )


_COMMON_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z")  # what CRMs and JavaScript write


def parse_timestamps(values: pl.Series) -> pl.Series:
    """parse_timestamp over a column, trying the common ISO forms first and the rest only where they failed.

    Every format is a full pass over the rows it is given; most files use one format, so
    the others run on the few rows the common ones could not read.
    """
    result = pl.Series(values.name, [None] * len(values), dtype=pl.Datetime("us", "UTC"))
    missed = values.is_not_null().arg_true()
    for fmt in _COMMON_FORMATS:
        if missed.is_empty():
            return result
        parsed = values[missed].str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
        result = result.scatter(missed, parsed)
        missed = missed.filter(parsed.is_null())
    if missed.is_empty():
        return result
    rest = pl.select(parse_timestamp(pl.lit(values[missed])).dt.cast_time_unit("us")).to_series()
    return result.scatter(missed, rest)
