"""Synthetic bounces of the MTAs the crisp corpus lacks (Domino, Courier, Gmail, Yahoo, Office 365/Exchange, Amazon
SES, a Japanese carrier in ISO-2022-JP), classified by the general rules: one labelled case per file."""

import json
from pathlib import Path

import pytest

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
