"""Synthetic bounces of the MTAs the crisp corpus lacks (Domino, Courier, Gmail, Yahoo, Office 365/Exchange, Amazon
SES, a Japanese carrier in ISO-2022-JP), classified by the general rules: one labelled case per file."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.tasks.bounces.classify import KINDS, REASONS
from mailflow.tasks.bounces.mailto import mailto_token
from mailflow.tasks.bounces.message import classify_message

SAMPLES = Path(__file__).parent / "data" / "bounces-synthetic"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))


def test_every_sample_file_has_labels_and_every_label_a_file():
    assert sorted(p.name for p in SAMPLES.glob("*.eml")) == sorted(EXPECTED) and len(EXPECTED) >= 7


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_synthetic_bounce_gets_its_labelled_recipients_kind_reason_and_status(name):
    results = classify_message((SAMPLES / name).read_bytes(), name)
    got = [{"recipient": r.recipient, "kind": r.kind, "reason": r.reason, "status": r.status, "smtp_code": r.smtp_code}
           for r in results]
    want = EXPECTED[name]
    assert [{k: g[k] for k in w} for g, w in zip(got, want, strict=False)] == want and len(got) == len(want)


RAW = [(SAMPLES / name).read_bytes() for name in sorted(EXPECTED)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RAW), st.integers(min_value=0), st.binary(max_size=40), st.integers(min_value=0, max_value=2))
def test_mutated_synthetic_bounces_never_crash_the_classifier_or_the_mailto_check(sample, at, junk, how):
    at %= len(sample) + 1
    raw = (sample[:at] + junk + sample[at:], sample[:at] + junk + sample[at + len(junk):], sample[:at])[how]
    results = classify_message(raw, "m")
    assert results and all(r.kind in KINDS and r.reason in REASONS for r in results)
    assert mailto_token(raw) is None, "none of them is addressed to unsubscribe+TOKEN@"


@pytest.mark.parametrize("name, delayed", [("gmail-delayed-prose.eml", True), ("yahoo-deferred-tss.eml", None),
                                           ("gmail-address-not-found.eml", False), ("amazon-ses-mailbox-full.eml", False)])
def test_a_delay_notice_is_marked_delayed_and_a_final_report_is_not(name, delayed):
    results = classify_message((SAMPLES / name).read_bytes(), name)
    if delayed is None:  # whichever the sample is, only a soft result may be a delay
        assert not any(r.delayed for r in results if r.kind != "soft")
    else:
        assert [r.delayed for r in results] == [delayed] * len(results)
