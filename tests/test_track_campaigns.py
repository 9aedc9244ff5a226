"""Campaigns as the service finds them: by token digest, links and manifest read again when they change, recipients by id."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from mailflow.errors import MailflowError
from mailflow.tasks.compose.tokens import campaign_digest
from mailflow.tasks.files.manifest import campaign_dir
from mailflow.tasks.track.campaigns import CampaignIndex, RecipientIndex, with_utm
from tests.support.campaign import SPEC, write_plan
from tests.support.clock import Clock
from tests.support.planning import campaign


def test_a_campaign_is_found_by_its_digest_and_unknown_digests_rescan_at_most_once_a_second(home):
    clock = Clock()
    index = CampaignIndex(home, clock)
    assert index.find(campaign_digest("news")) is None
    write_plan(home, SPEC, [(["a@example.com"], "A", None, False)])
    assert index.find(campaign_digest("news")) is None, "a second scan within the second: forged digests cost nothing"
    clock.now += 1.0
    found = index.find(campaign_digest("news"))
    assert (found.campaign_id, found.links, found.variant_name(None)) == ("news", [], "A")


def test_links_and_manifest_are_read_again_within_a_second_of_their_files_changing(home):
    write_plan(home, SPEC, [(["a@example.com"], "A", None, False)])
    clock = Clock()
    index = CampaignIndex(home, clock)
    links = campaign_dir(home, "news") / "links.json"
    links.write_text(json.dumps({"campaign_id": "news", "links": ["https://a.example/"]}))
    assert index.find(campaign_digest("news")).links == ["https://a.example/"]
    links.write_text(json.dumps({"campaign_id": "news", "links": ["https://a.example/", "https://b.example/long"]}))
    assert index.find(campaign_digest("news")).links == ["https://a.example/"], "looked at once a second, not per request"
    clock.now += 1.0
    assert index.find(campaign_digest("news")).links == ["https://a.example/", "https://b.example/long"]
    write_plan(home, replace(SPEC, tracking={"utm": {"source": "x"}}), [(["a@example.com"], "A", None, False)])
    clock.now += 1.0
    assert index.find(campaign_digest("news")).tracked_url("https://a.example/", "A") == "https://a.example/?utm_source=x"


def test_a_recipient_row_is_found_in_its_chunk_by_subscriber_id(home):
    write_plan(home, SPEC, [([f"a{i}@example.com" for i in range(5)], "A", None, False),
                            ([f"b{i}@example.com" for i in range(5)], "A", None, False)])
    index = CampaignIndex(home)
    found = index.find(campaign_digest("news"))

    async def lookup(sid):
        return await index.recipient(found, sid)
    assert asyncio.run(lookup(7))["email"] == "b1@example.com"
    assert asyncio.run(lookup(2))["email"] == "a1@example.com" and asyncio.run(lookup(11)) is None
    index.close()


def test_the_recipient_index_of_a_million_recipients_is_sorted_ids_of_about_12_bytes_each_found_by_binary_search(tmp_path):
    import polars as pl

    paths = []
    for chunk in range(100):  # ids dealt out across chunks, as planning deals domains out
        path = tmp_path / f"chunk-{chunk:05d}.parquet"
        pl.DataFrame({"subscriber_id": pl.int_range(chunk, 1_000_000, 100, eager=True)}).write_parquet(path)
        paths.append(path)
    index = RecipientIndex.build(tuple(paths))
    assert [index.chunk_of(sid).name for sid in (0, 1, 999_999, 123_456)] == [
        "chunk-00000.parquet", "chunk-00001.parquet", "chunk-00099.parquet", "chunk-00056.parquet"]
    assert index.chunk_of(1_000_000) is None and index.chunk_of(-1) is None
    # speed lives in `make bench BENCH=track_index`; here what makes it fast: one sorted column searched in
    # O(log n) probes (no per-recipient Python objects), an Int64 id and an Int32 file position a recipient
    assert len(index.ids) == 1_000_000 and index.ids.is_sorted()
    assert (index.ids.dtype, index.files.dtype) == (pl.Int64, pl.Int32)
    assert index.ids.estimated_size() + index.files.estimated_size() <= 12 * 1_000_000 + 4096


@pytest.mark.parametrize("url,expected", [
    ("https://s.example/a", "https://s.example/a?utm_source=news&utm_content=B"),
    ("https://s.example/a?x=1#top", "https://s.example/a?x=1&utm_source=news&utm_content=B#top"),
    ("https://s.example/a?utm_source=partner", "https://s.example/a?utm_source=partner&utm_content=B"),
    ("https://s.example/a?", "https://s.example/a?utm_source=news&utm_content=B"),
    ("https://s.example/a?utm_source=x&utm_content=y", "https://s.example/a?utm_source=x&utm_content=y"),
])
def test_utm_parameters_are_appended_before_the_fragment_and_those_in_the_url_win(url, expected):
    assert with_utm(url, {"source": "news", "content": "{variant}"}, "spring", "B") == expected


def test_the_campaign_file_takes_utm_parameters_under_tracking_and_names_a_wrong_one(tmp_path):
    spec = campaign(tmp_path, extra="tracking: {clicks: true, utm: {source: newsletter, campaign: '{campaign}'}}")
    assert spec.tracking == {"clicks": True, "utm": {"source": "newsletter", "campaign": "{campaign}"}}
    assert spec.as_dict()["tracking"]["utm"]["source"] == "newsletter", "it travels in the manifest's spec"
    with pytest.raises(MailflowError, match=r"unknown field 'tracking.utm.medium2'"):
        campaign(tmp_path, extra="tracking: {utm: {medium2: email}}")
    with pytest.raises(MailflowError, match=r"field 'tracking.utm.source' must be a non-empty string"):
        campaign(tmp_path, extra="tracking: {utm: {source: 3}}")
    with pytest.raises(MailflowError, match=r"field 'tracking' takes only opens, clicks and utm"):
        campaign(tmp_path, extra="tracking: {views: true}")
