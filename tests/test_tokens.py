"""Tokens: 40 characters naming a send and its variant, tamper-proof, verified under the current and, for a while, the previous key."""

import base64
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.compose.tokens import NO_VARIANT, BadToken, SendRef, TokenSigner, _decode, _encode, _encode_legacy, campaign_digest, key_id
from mailflow.tasks.compose.tracking import verify_redirect
from tests.support.legacy_tokens import OLD_CLICK_TOKEN, OLD_LINK, OLD_SEND_TOKEN, legacy_link_signature, legacy_token

UNTIL = datetime(2027, 1, 31, tzinfo=UTC)
BEFORE, AFTER = UNTIL - timedelta(seconds=1), UNTIL + timedelta(seconds=1)
SECRETS = st.text(min_size=1, max_size=40)
CAMPAIGNS = st.text(min_size=1, max_size=60)
SUBSCRIBERS = st.integers(min_value=0, max_value=2**64 - 1)
PURPOSES = st.sampled_from(["send", "unsubscribe", "view", "open", "click"])
VARIANTS = st.none() | st.integers(min_value=0, max_value=NO_VARIANT - 1)
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def rotated(now: datetime, current: str = "new-key", previous: str = "s3cret") -> TokenSigner:
    return TokenSigner(current, previous, UNTIL, now=lambda: now)


def secrets_sharing_a_key_id() -> tuple[str, str]:
    seen: dict[int, str] = {}
    for secret in (f"key-{i}" for i in itertools.count()):
        if key_id(secret) in seen:
            return seen[key_id(secret)], secret
        seen[key_id(secret)] = secret


def test_a_token_is_40_lower_case_characters_naming_campaign_subscriber_variant_and_key():
    signer = TokenSigner("s3cret")
    token = signer.sign("spring-sale", 12345, "send", 1)
    assert len(token) == 40 and token == token.lower() and set(token) <= set(ALPHABET)
    assert signer.verify(token, "send") == SendRef(campaign_digest("spring-sale"), 12345, "send", 1, key_id("s3cret"))
    assert signer.verify(signer.sign("spring-sale", 12345, "open"), "open").variant is None
    with pytest.raises(BadToken):
        signer.verify(token, "unsubscribe")  # a bounce token is not an unsubscribe token
    for bad in (-1, NO_VARIANT, 256):
        with pytest.raises(ValueError):
            signer.sign("spring-sale", 1, "send", bad)
    with pytest.raises(ValueError):
        TokenSigner("")
    with pytest.raises(ValueError, match="previous_until"):
        TokenSigner("new", "old")


def test_a_token_folded_to_upper_case_by_a_mail_system_verifies_and_mixed_case_does_not():
    signer = TokenSigner("s3cret")
    token = signer.sign("spring-sale", 12345, "send", 0)
    assert signer.verify(token.upper(), "send").subscriber_id == 12345
    assert signer.verify(OLD_SEND_TOKEN.upper(), "send").subscriber_id == 12345
    letter = next(i for i, c in enumerate(token) if c.isalpha())
    with pytest.raises(BadToken):
        signer.verify(token[:letter] + token[letter].upper() + token[letter + 1:], "send")


@settings(max_examples=200)
@given(SECRETS, CAMPAIGNS, SUBSCRIBERS, PURPOSES, VARIANTS)
@example("k", "c", 2**64 - 1, "click", NO_VARIANT - 1)
def test_any_token_signed_verifies(secret, campaign, subscriber_id, purpose, variant):
    signer = TokenSigner(secret)
    token = signer.sign(campaign, subscriber_id, purpose, variant)
    ref = signer.verify(token, purpose)
    assert (ref.campaign_digest, ref.subscriber_id, ref.variant, ref.key_id) == \
        (campaign_digest(campaign), subscriber_id, variant, key_id(secret))


@settings(max_examples=300)
@given(SUBSCRIBERS, VARIANTS, st.data())
def test_any_changed_character_truncation_extension_or_case_spelling_is_refused(subscriber_id, variant, data):
    signer = TokenSigner("s3cret")
    token = signer.sign("spring-sale", subscriber_id, "click", variant)
    kind = data.draw(st.sampled_from(["change", "truncate", "extend", "case"]))
    if kind == "change":  # any character, to any other one: a letter of the alphabet, a capital, a digit base32 lacks ...
        at = data.draw(st.integers(0, 39))
        other = data.draw(st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(lambda c: c != token[at]))
        forged = token[:at] + other + token[at + 1:]
    elif kind == "truncate":  # 36 characters too: the first layout's length
        forged = token[:data.draw(st.integers(0, 39))]
    elif kind == "extend":
        forged = token + data.draw(st.text(min_size=1, max_size=8))
    else:  # some letters capitalised, not all of them
        letters = [i for i, c in enumerate(token) if c.isalpha()]
        upper = set(data.draw(st.lists(st.sampled_from(letters), min_size=1, max_size=len(letters) - 1, unique=True)))
        forged = "".join(c.upper() if i in upper else c for i, c in enumerate(token))
        if forged == token.upper():
            return
    with pytest.raises(BadToken):
        signer.verify(forged, "click")


@settings(max_examples=100)
@given(SECRETS, SECRETS, SUBSCRIBERS, PURPOSES, VARIANTS)
def test_a_token_signed_with_an_unknown_key_never_verifies(secret, other, subscriber_id, purpose, variant):
    if other in (secret, secret + "-old"):
        return
    token = TokenSigner(other).sign("spring-sale", subscriber_id, purpose, variant)
    for signer in (TokenSigner(secret), TokenSigner(secret, secret + "-old", UNTIL, now=lambda: BEFORE)):
        with pytest.raises(BadToken):
            signer.verify(token, purpose)
    with pytest.raises(BadToken):
        TokenSigner(secret).verify(legacy_token(other, "spring-sale", subscriber_id, purpose), purpose)


@settings(max_examples=100)
@given(SUBSCRIBERS, VARIANTS, st.integers(min_value=-10**9, max_value=10**9))
@example(1, 0, 0)
@example(1, 0, 1)
def test_a_token_signed_with_the_previous_key_verifies_until_previous_until_and_not_after(subscriber_id, variant, offset):
    now = UNTIL + timedelta(seconds=offset)
    old = TokenSigner("s3cret").sign("spring-sale", subscriber_id, "open", variant)
    first_layout = legacy_token("s3cret", "spring-sale", subscriber_id, "open")
    signer = rotated(now)
    new = signer.sign("spring-sale", subscriber_id, "open", variant)
    assert new != old and signer.verify(new, "open").key_id == key_id("new-key")
    for token in (old, first_layout):
        if offset <= 0:
            assert signer.verify(token, "open").subscriber_id == subscriber_id
        else:
            with pytest.raises(BadToken):
                signer.verify(token, "open")
    assert signer.verify(new, "open").subscriber_id == subscriber_id, "the current key has no end"


def test_tokens_of_the_first_layout_verify_with_no_variant_under_the_current_or_previous_key():
    ref = SendRef(campaign_digest("spring-sale"), 12345, "send", None, None)
    assert TokenSigner("s3cret").verify(OLD_SEND_TOKEN, "send") == ref
    assert rotated(BEFORE).verify(OLD_SEND_TOKEN, "send") == ref
    with pytest.raises(BadToken):
        rotated(AFTER).verify(OLD_SEND_TOKEN, "send")
    with pytest.raises(BadToken):
        TokenSigner("s3cret").verify(OLD_SEND_TOKEN, "click")


def test_keys_sharing_a_key_id_are_both_tried():
    first, second = secrets_sharing_a_key_id()
    assert first != second and key_id(first) == key_id(second)
    signer = TokenSigner(first, second, UNTIL, now=lambda: BEFORE)
    for secret in (first, second):
        assert signer.verify(TokenSigner(secret).sign("c", 7, "click", 2), "click").key_id == key_id(first)


def test_redirect_signatures_rotate_with_their_click_token():
    old = TokenSigner("s3cret")
    url = "https://shop.example/p/1?a=b"
    token = old.sign("spring-sale", 12345, "click", 0)
    query = f"t={token}&s={old.sign_link(token, url)}&u={url.replace('?', '%3F').replace('=', '%3D')}"
    assert verify_redirect(rotated(BEFORE), query) == (old.verify(token, "click"), url)
    with pytest.raises(BadToken):
        verify_redirect(rotated(AFTER), query)
    # The signature must come from the key that signed the token: the current key's does not vouch for an old token
    new = rotated(BEFORE)
    with pytest.raises(BadToken):
        new.verify_link(token, url, new.sign_link(token, url))
    # A redirect mailed before key ids still goes where it went
    assert new.verify_link(OLD_CLICK_TOKEN, *OLD_LINK).subscriber_id == 12345
    assert OLD_LINK[1] == legacy_link_signature("s3cret", OLD_CLICK_TOKEN, OLD_LINK[0])
    with pytest.raises(BadToken):
        rotated(AFTER).verify_link(OLD_CLICK_TOKEN, *OLD_LINK)


def test_the_clock_is_read_at_each_verification():
    now = [BEFORE]
    signer = TokenSigner("new-key", "s3cret", UNTIL, now=lambda: now[0])
    assert signer.verify(OLD_SEND_TOKEN, "send").subscriber_id == 12345
    now[0] = AFTER  # a service that runs across previous_until stops taking the old key then
    with pytest.raises(BadToken):
        signer.verify(OLD_SEND_TOKEN, "send")


@given(st.binary(min_size=25, max_size=25), st.binary(min_size=22, max_size=22))
def test_token_encoding_is_base32_both_ways(raw, old):
    assert _encode(raw) == base64.b32encode(raw).decode().lower()
    assert _encode_legacy(old) == base64.b32encode(old).decode().lower().rstrip("=")
    assert (_decode(_encode(raw)), _decode(_encode_legacy(old))) == (raw, old)


def test_the_signer_of_the_settings_signs_with_the_secret_and_verifies_the_previous_one_until_its_end():
    from mailflow.errors import MailflowError
    from mailflow.settings import load_settings
    from mailflow.tasks.compose.tokens import signer_from_settings

    env = {"MAILFLOW_TRACKING__SECRET": "new-key", "MAILFLOW_TRACKING__PREVIOUS_SECRET": "s3cret",
           "MAILFLOW_TRACKING__PREVIOUS_UNTIL": "2027-01-31"}
    tracking = load_settings(environ=env).tracking
    before, after = signer_from_settings(tracking, now=lambda: BEFORE), signer_from_settings(tracking, now=lambda: AFTER)
    assert before.key_id == after.key_id == key_id("new-key")
    assert before.verify(OLD_SEND_TOKEN, "send").subscriber_id == 12345
    with pytest.raises(BadToken):
        after.verify(OLD_SEND_TOKEN, "send")
    assert signer_from_settings(load_settings(environ={"MAILFLOW_TRACKING__SECRET": "s3cret"}).tracking).verify(
        OLD_SEND_TOKEN, "send").subscriber_id == 12345, "no end without a previous secret"
    with pytest.raises(MailflowError, match="set MAILFLOW_TRACKING__SECRET"):
        signer_from_settings(load_settings(environ={}).tracking)
