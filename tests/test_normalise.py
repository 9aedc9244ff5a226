"""Properties of normalisation: idempotent, canonical, nothing invented."""

import unicodedata
from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.errors import MailflowError
from mailflow.tasks.ingest.normalise import (
    CASELESS_PROVIDERS,
    Mapping_,
    canonical_email,
    idna_domains,
    normalise,
    parse_timestamp,
    rename_columns,
)
from mailflow.tasks.ingest.readers import header_names

LOCAL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
DOMAIN = st.one_of(st.sampled_from(["Example.COM", "GMail.com", "outlook.com", "bücher.DE", "x.org"]),
                   st.text(alphabet="abcXYZ.-é", min_size=1, max_size=12))


def canon(values):
    frame = pl.DataFrame({"email": values, "line": list(range(len(values)))})
    return idna_domains(normalise(frame, Mapping_()))["email"].to_list()


@given(st.lists(st.tuples(LOCAL, DOMAIN), min_size=1, max_size=8), st.sampled_from(["", " ", "\t"]))
@example([("Ann", "GMail.com")], " ")
@example([("e\u0301", "example.com")], "")
@settings(max_examples=200, deadline=None)
def test_canonical_form_is_idempotent_trimmed_and_nfc(pairs, pad):
    raw = [f"{pad}{local}@{domain}{pad}" for local, domain in pairs]
    once = canon(raw)
    assert canon(once) == once
    for value in once:
        if value is None:
            continue
        assert value == value.strip() and unicodedata.is_normalized("NFC", value)
        if value.count("@") != 1:
            continue  # not an address: left as it came, for the address check to quarantine
        local, _, domain = value.rpartition("@")
        assert domain == domain.lower()
        if domain in CASELESS_PROVIDERS:
            assert local == local.lower()


@given(LOCAL, st.sampled_from(["Example.com", "EXAMPLE.ORG"]))
def test_local_part_case_is_kept_where_the_provider_may_care(local, domain):
    local = local.strip()
    if not local or "@" in local:
        return
    assert pl.select(canonical_email(pl.lit(f"{local}@{domain}")))[0, 0] == f"{local}@{domain.lower()}"


@given(st.lists(st.text(max_size=10), max_size=10))
def test_header_names_are_unique_identifiers(names):
    out = header_names(names)
    assert len(out) == len(names) and len(set(out)) == len(out)
    assert all(n and n.replace("_", "a").isalnum() and n.isascii() for n in out)


def test_repeated_header_names_are_numbered_not_grown():
    assert header_names(["a", "a", "a", "a_2", "", ""]) == ["a", "a_2", "a_3", "a_2_2", "column_5", "column_6"]
    names = header_names(["name"] * 1_000)
    assert len(set(names)) == 1_000 and max(map(len, names)) == len("name_1000")


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_iso_timestamps_parse_back(moment):
    moment = moment.replace(microsecond=0)
    for text in (moment.isoformat(), moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.strftime("%Y-%m-%d %H:%M:%S")):
        assert pl.select(parse_timestamp(pl.lit(text)))[0, 0] == moment


def test_two_columns_aliased_to_one_field_are_refused_in_one_line():
    """`mail` and `e_mail` both mean email: which one is meant is the user's call, not a crash in the rename."""
    frame = pl.DataFrame({"mail": ["a@example.com"], "e_mail": ["b@example.com"], "line": [2]})
    with pytest.raises(MailflowError, match="^mapping: two columns map to the same name$"):
        rename_columns(frame, ["mail", "e_mail"], Mapping_())
