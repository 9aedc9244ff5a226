"""DKIM as the settings ask: RSA, Ed25519 or both (RFC 8463); every signature of a composed message verifies."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.dkim import DkimSigner, dns_record, signer_for
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import TokenSigner
from tests.support.campaign import COMPOSE_SPEC
from tests.support.dkimkeys import DOMAIN, HEADERS, pem, signature_tags

pytestmark = pytest.mark.usefixtures("ed25519_verification")

ROW = {"subscriber_id": 42, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
       "attributes": '{"plan": "free", "country": "JP"}'}


@pytest.fixture(scope="module")
def pems():
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"rsa": pem(rsa_private).decode(), "ed25519": pem(ed25519.Ed25519PrivateKey.generate()).decode()}


def dkim_settings(**dkim_keys):
    keys = {f"MAILFLOW_DKIM__{k.upper()}": dkim_keys.pop(k) for k in ("private_key", "ed25519_private_key") if k in dkim_keys}
    return load_settings(overrides={"dkim": {"domain": DOMAIN, **dkim_keys}}, environ=keys).dkim


def verify_all(message: bytes, signer: DkimSigner) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of the message, top to bottom."""
    records = {f"{k.selector}._domainkey.{k.domain}.": dns_record(k).encode() for k in signer.keys}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode())

    def verdict(idx: int) -> bool:
        try:
            return dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException:  # dkim.verify() says False for these too
            return False

    count = sum(1 for line in message.split(b"\r\n\r\n")[0].split(b"\r\n") if line.startswith(b"DKIM-Signature:"))
    return [verdict(i) for i in range(count)]


def test_default_is_rsa_and_ed25519_is_one_setting_away(pems):
    assert load_settings(environ={}).dkim.algorithm == "rsa-sha256"
    assert signer_for(load_settings(environ={}).dkim) is None, "no domain, no signing"
    rsa_only = signer_for(dkim_settings(selector="s1", private_key=pems["rsa"]))
    assert [k.algorithm for k in rsa_only.keys] == ["rsa-sha256"]
    ed_only = signer_for(dkim_settings(algorithm="ed25519-sha256", selector="s1e", private_key=pems["ed25519"]))
    assert [k.algorithm for k in ed_only.keys] == ["ed25519-sha256"]
    for signer in (rsa_only, ed_only):
        assert verify_all(signer.sign(HEADERS + b"\r\nHello\r\n"), signer) == [True]


def test_both_signs_twice_with_one_body_hash(pems):
    signer = signer_for(dkim_settings(algorithm="both", selector="s1", private_key=pems["rsa"],
                                      ed25519_selector="s1e", ed25519_private_key=pems["ed25519"]))
    signed = signer.sign(HEADERS + b"\r\nHello  there\r\n")
    assert verify_all(signed, signer) == [True, True]
    first, second = signed.split(b"\r\nDKIM-Signature:")[:2]
    tags = [signature_tags(first), signature_tags(b"DKIM-Signature:" + second)]
    assert [(t[b"a"], t[b"s"]) for t in tags] == [(b"rsa-sha256", b"s1"), (b"ed25519-sha256", b"s1e")]
    assert tags[0][b"bh"] == tags[1][b"bh"]
    assert verify_all(signed.replace(b"Hello  there", b"Hello  THERE"), signer) == [False, False]


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256", "both"])
def test_composed_messages_verify(tmp_path, pems, algorithm):
    (tmp_path / "t.html.j2").write_text('<p>Hi {{ subscriber.first_name }}</p>  \n<a href="https://s.example/'
                                        '{{ subscriber.plan }}">x</a>\n\t<a href="https://s.example/a">y</a>\n')
    keys = {"rsa-sha256": {"selector": "s1", "private_key": pems["rsa"]},
            "ed25519-sha256": {"selector": "s1e", "private_key": pems["ed25519"]},
            "both": {"selector": "s1", "private_key": pems["rsa"], "ed25519_selector": "s1e",
                     "ed25519_private_key": pems["ed25519"]}}[algorithm]
    signer = signer_for(dkim_settings(algorithm=algorithm, **keys))
    templates = CampaignTemplates("t", "Grüße, {{ subscriber.first_name }}", {}, tmp_path, True, True)
    composer = Composer(COMPOSE_SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com", signer)
    data = composer.compose(ROW).data
    assert verify_all(data, signer) == [True] * len(signer.keys)
    assert verify_all(data.replace(b"Hi Ann", b"Hi Bob"), signer) == [False] * len(signer.keys)


def test_settings_mistakes_are_one_line_errors(pems, tmp_path):
    cases = [
        (dict(selector="s1", private_key=pems["ed25519"]), "is an ed25519-sha256 key but dkim.algorithm is 'rsa-sha256'"),
        (dict(algorithm="ed25519-sha256", selector="s1", private_key=pems["rsa"]), "is an rsa-sha256 key"),
        (dict(algorithm="both", selector="s1", private_key=pems["rsa"]), "MAILFLOW_DKIM__ED25519_PRIVATE_KEY"),
        (dict(algorithm="both", selector="s1", private_key=pems["rsa"], ed25519_selector="s1",
              ed25519_private_key=pems["ed25519"]), "selectors of their own"),
        (dict(selector="s1", private_key_file=str(tmp_path / "missing.pem")), "dkim.private_key_file"),
        (dict(selector="s1"), "no key"),
        (dict(selector="bad selector", private_key=pems["rsa"]), "dkim.private_key: DKIM selector"),
    ]
    for keys, message in cases:
        with pytest.raises(MailflowError, match=message.replace(".", r"\.").replace("(", r"\(")):
            signer_for(dkim_settings(**keys))
    with pytest.raises(MailflowError, match="dkim.algorithm 'rsa' is not one of"):
        dkim_settings(algorithm="rsa")
    key_file = tmp_path / "ed.pem"
    key_file.write_text(pems["ed25519"])
    signer = signer_for(dkim_settings(algorithm="both", selector="s1", private_key=pems["rsa"],
                                      ed25519_selector="s1e", ed25519_private_key_file=str(key_file)))
    assert [k.selector for k in signer.keys] == ["s1", "s1e"]
    assert pems["ed25519"][40:80] not in repr(dkim_settings(ed25519_private_key=pems["ed25519"]))
