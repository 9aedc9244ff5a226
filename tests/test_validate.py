"""Address checks: the fast path never accepts what email-validator rejects."""

import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.compose.headers import encode_mailbox
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.core.validate import SMTPUTF8, UnsendableAddress, check_address, check_addresses, fast_path_ok, sendable_address
from mailflow.tasks.deliver.wire import unsafe_address

ATOM = st.text(alphabet="abcXYZ019.-_+'!#~@ \"é", min_size=0, max_size=20)


def fast(address: str) -> bool:
    return pl.DataFrame({"e": [address]}).select(fast_path_ok(pl.col("e")))[0, 0]


@given(local=ATOM, domain=st.text(alphabet="abc019.-XYZé_", min_size=0, max_size=30))
@example(local="a", domain="example.test")
@example(local="a", domain="xn--zz.com")
@example(local="a", domain="ab--cd.com")
@example(local="a" * 65, domain="example.com")
@example(local="a..b", domain="example.com")
@example(local=".a", domain="example.com")
@example(local="a", domain="-x.com")
@example(local="a", domain="x.c0m")
@example(local="a", domain="localhost")
@settings(max_examples=400, deadline=None)
def test_fast_path_is_never_looser_than_email_validator(local, domain):
    address = f"{local}@{domain}"
    if fast(address):
        normalised, error = check_address(address)
        assert error is None, f"fast path accepted {address!r}: {error}"


def test_fast_path_first_email_validator_for_the_rest():
    df = pl.DataFrame({"email": ["ann@example.com", "bob@xn--exmple-cua.com", "bad@", None], "line": [2, 3, 4, 5]})
    errors = check_addresses(df)["email_error"].to_list()
    assert errors[0] is None and errors[1] is None
    assert errors[2].startswith("invalid_email") and errors[3].startswith("missing_email")


@given(local=ATOM, domain=st.text(alphabet="abc019.-XYZé_日", min_size=0, max_size=30))
@example(local="josé", domain="example.com")
@example(local="ann", domain="exämple.com")
@example(local="a..b", domain="example.com")
@example(local="日本", domain="example.jp")
@settings(max_examples=400, deadline=None)
def test_ingest_and_send_agree_on_every_address(local, domain):
    address = f"{local}@{domain}"
    kept = check_addresses(pl.DataFrame({"email": [address], "line": [1]})).row(0, named=True)
    try:
        verdict = sendable_address(address)
    except UnsendableAddress as exc:
        assert kept["email_error"] == str(exc)
        return
    assert kept["email_error"] is None and kept["needs_smtputf8"] == (verdict == SMTPUTF8)
    # and what ingest keeps, the header writer and the SMTP client take (non-ASCII only with SMTPUTF8)
    encode_mailbox("Ann", address, 4, utf8=verdict == SMTPUTF8)
    assert unsafe_address(Envelope("b@example.com", address, b"x", smtputf8=verdict == SMTPUTF8)) is None
    assert verdict == SMTPUTF8 or address.isascii()
