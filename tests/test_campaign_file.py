"""The campaign file's audience, A/B and schedule fields: what they mean, and one-line errors for bad values."""

from __future__ import annotations

import pytest

from mailflow.errors import MailflowError
from mailflow.tasks.plan.campaign import AbTest, CampaignSpec, FrequencyCap, SendAt, load_campaign

HEAD = 'name: Spring\nfrom: "Shop <news@example.com>"\ntemplate: newsletter\nsubject: "Hi"\n'
VARIANTS = "variants:\n  - {name: A}\n  - {name: B, weight: 2, subject: Last days, from: 'Sale <sale@example.com>', template: digest}\n"


def load(tmp_path, extra: str) -> CampaignSpec:
    path = tmp_path / "spring.yaml"
    path.write_text(HEAD + extra)
    return load_campaign(path)


def test_a_full_ab_campaign_reads_into_its_spec(tmp_path):
    spec = load(tmp_path, VARIANTS + """
segment: {include: [engaged_90d, newsletter], exclude: [list:staff]}
params: {since: 2026-01-02, campaign: autumn}
preheader: New in spring
send_at: {local_time: "9:00", default_zone: Asia/Tokyo}
ab: {test_fraction: 0.2, holdout_fraction: 0.05, metric: click_to_open, wait: 1d 6h, min_per_variant: 100,
     confidence: 0.9, fallback: control}
frequency_cap: {campaigns: 2, days: 7}
""")
    assert spec.segment_include == ("engaged_90d", "newsletter") and spec.segment_exclude == ("list:staff",)
    assert spec.params == {"since": "2026-01-02", "campaign": "autumn"}
    assert spec.variant_names == ("A", "B") and spec.variants[1].weight == 2.0
    assert spec.send_at == SendAt(local_time="09:00", default_zone="Asia/Tokyo")
    assert spec.ab == AbTest(test_fraction=0.2, holdout_fraction=0.05, metric="click_to_open", wait_seconds=30 * 3600,
                             min_per_variant=100, confidence=0.9, fallback="control")
    assert spec.frequency_cap == FrequencyCap(campaigns=2, days=7)


def test_a_variant_composes_with_its_overrides_and_the_campaigns_other_fields(tmp_path):
    spec = load(tmp_path, VARIANTS + "preheader: Spring is here\n")
    a, b = spec.for_variant("A"), spec.for_variant("B")
    assert (a.subject, a.from_addr, a.template, a.preheader) == ("Hi", "Shop <news@example.com>", "newsletter",
                                                                 "Spring is here")
    assert (b.subject, b.from_addr, b.template, b.preheader) == ("Last days", "Sale <sale@example.com>", "digest",
                                                                 "Spring is here")
    with pytest.raises(MailflowError, match="no variant 'C'"):
        spec.for_variant("C")


def test_a_campaign_without_variants_is_variant_a(tmp_path):
    spec = load(tmp_path, "")
    assert spec.variant_names == ("A",) and spec.for_variant("A") is spec and spec.ab is None and spec.send_at is None


def test_the_spec_survives_the_manifest_round_trip(tmp_path):
    spec = load(tmp_path, VARIANTS + "send_at: 2026-12-24T09:00:00+09:00\nab: {test_fraction: 0.5}\n"
                "frequency_cap: false\nsegment: engaged_90d\n")
    assert CampaignSpec.from_dict(spec.as_dict()) == spec
    assert spec.send_at == SendAt(at="2026-12-24T09:00:00+09:00") and spec.frequency_cap == FrequencyCap(0, 0)


@pytest.mark.parametrize("extra,field,problem", [
    ("variants:\n  - {name: A}\n", "variants", "2 to 8"),
    ("variants: [" + ", ".join(f"{{name: v{i}}}" for i in range(9)) + "]\n", "variants", "2 to 8"),
    ("variants:\n  - {name: A}\n  - {name: A}\n", "variants[1].name", "used by two variants"),
    ("variants:\n  - {name: A}\n  - {name: holdout}\n", "variants[1].name", "reserved"),
    ("variants:\n  - {name: A, weight: 0}\n  - {name: B}\n", "variants[0].weight", "positive number"),
    ("variants:\n  - {name: A, weight: -1}\n  - {name: B}\n", "variants[0].weight", "positive number"),
    ("variants:\n  - {name: A, weight: heavy}\n  - {name: B}\n", "variants[0].weight", "positive number"),
    ("variants:\n  - {name: A, weight: .nan}\n  - {name: B}\n", "variants[0].weight", "positive number"),
    ("variants:\n  - {name: A, colour: red}\n  - {name: B}\n", "variants[0].colour", "unknown field"),
    ("variants:\n  - {name: 'A B'}\n  - {name: B}\n", "variants[0].name", "short name"),
    (VARIANTS + "ab: {test_fraction: 1.5}\n", "ab.test_fraction", "from 0 to 1"),
    (VARIANTS + "ab: {test_fraction: 0}\n", "ab.test_fraction", "more than 0"),
    (VARIANTS + "ab: {holdout_fraction: -0.1}\n", "ab.holdout_fraction", "from 0 to 1"),
    (VARIANTS + "ab: {test_fraction: 0.7, holdout_fraction: 0.4}\n", "ab.holdout_fraction", "more than 1"),
    (VARIANTS + "ab: {metric: revenue}\n", "ab.metric", "one of"),
    (VARIANTS + "ab: {wait: soon}\n", "ab.wait", "duration"),
    (VARIANTS + "ab: {fallback: coin}\n", "ab.fallback", "one of"),
    ("ab: {test_fraction: 0.2}\n", "ab", "needs `variants`"),
    ("send_at: {local_time: '25:00'}\n", "send_at.local_time", "time of day"),
    ("send_at: {local_time: nine}\n", "send_at.local_time", "time of day"),
    ("send_at: {local_time: '09:00', default_zone: Mars/Olympus}\n", "send_at.default_zone", "not a known time zone"),
    ("send_at: 2026-12-24 09:00\n", "send_at", "needs a time zone"),
    ("send_at: next tuesday\n", "send_at", "ISO time"),
    ("variants:\n  - {name: A, send_at: {local_time: '9'}}\n  - {name: B}\n", "variants[0].send_at.local_time",
     "time of day"),
    ("segment: {include: [a], only: [b]}\n", "segment.only", "unknown field"),
    ("segment: {include: [1, '']}\n", "segment.include", "name or a list of names"),
    ("params: {until: 30d}\n", "params.until", "unknown field"),
    ("frequency_cap: {campaigns: 2, days: 0}\n", "frequency_cap.days", ">= 1"),
    ("frequency_cap: 3\n", "frequency_cap", "{campaigns: N, days: D}"),
    ("tracking: {utm: {campaign: '{campaing}'}}\n", "tracking.utm.campaign", "only {campaign} and {variant}"),
    ("tracking: {utm: {content: 'ab-{}'}}\n", "tracking.utm.content", "only {campaign} and {variant}"),
])
def test_each_bad_field_is_one_line_naming_the_file_and_field(tmp_path, extra, field, problem):
    with pytest.raises(MailflowError) as err:
        load(tmp_path, extra)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "spring.yaml") + ": ") and "\n" not in message
    assert repr(field) in message and problem in message
