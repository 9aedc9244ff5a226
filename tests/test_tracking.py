"""Click tracking: static links through the link table, templated links through signed redirects."""

import html
import re
from email import message_from_bytes
from email.policy import default
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import BadToken, TokenSigner, campaign_digest
from mailflow.tasks.compose.tracking import LinkTable, Redirects, rewrite_links, verify_redirect
from mailflow.tasks.plan.campaign import CampaignSpec

SPEC = CampaignSpec(name="Spring", campaign_id="spring", from_addr="Shop <news@example.com>",
                    subject="Hi", template="t")
ROW = {"subscriber_id": 42, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
       "attributes": '{"plan": "pro", "website": "https://evil.example/x"}'}
HTML = """<html><body>
<a href="https://shop.example/sale">static</a>
<a href="https://shop.example/u/{{ subscriber.subscriber_id }}?plan={{ subscriber.plan }}&amp;x=1">mine</a>
{% for n in range(1, 3) %}<a class="more" href="https://news.example/stories/{{ n }}">story {{ n }}</a>{% endfor %}
<a href="{{ subscriber.website }}">computed host</a> <a href="https://{{ subscriber.plan }}.example/">host too</a>
<a href="{{ unsubscribe_url }}">unsubscribe</a> <a href="mailto:help@example.com">mail</a>
</body></html>"""


@pytest.fixture
def composer(tmp_path):
    (tmp_path / "t.html.j2").write_text(HTML)
    templates = CampaignTemplates("t", SPEC.subject, {"name": "Spring", "id": "spring"}, tmp_path,
                                  track_clicks=True)
    return Composer(SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com")


def hrefs(composer, row=ROW) -> list[str]:
    msg = message_from_bytes(composer.compose(row).data, policy=default)
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', msg.get_body(("html",)).get_content())]


def test_templated_links_become_signed_redirects_and_static_ones_use_the_table(composer):
    links = hrefs(composer)
    static, mine, story1, story2, computed, host, unsubscribe, mail = links
    assert re.fullmatch(r"https://t\.example/c/[a-z2-7]{40}/0", static)
    assert composer.templates.links.urls == ["https://shop.example/sale"], "only static URLs in links.json"
    signer = TokenSigner("k")
    for link, url in ((mine, "https://shop.example/u/42?plan=pro&x=1"),
                      (story1, "https://news.example/stories/1"), (story2, "https://news.example/stories/2")):
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "t.example", "/r")
        ref, target = verify_redirect(signer, parts.query)
        assert target == url
        assert (ref.subscriber_id, ref.campaign_digest, ref.purpose) == (42, campaign_digest("spring"), "click")
    assert computed == "https://evil.example/x", "a host from subscriber data is never signed"
    assert host == "https://pro.example/"
    assert unsubscribe.startswith("https://t.example/u/") and mail == "mailto:help@example.com"
    assert "ann@example.com" not in "".join(links)


def test_tampering_with_a_redirect_breaks_it(composer):
    query = urlsplit(hrefs(composer)[1]).query
    signer = TokenSigner("k")
    fields = {k: v[0] for k, v in parse_qs(query).items()}
    assert verify_redirect(signer, query)[1] == fields["u"]
    other = hrefs(composer, {**ROW, "subscriber_id": 43})[1]
    tampered = {
        "another URL": query.replace("shop.example", "evil.example"),
        "a longer URL": query + "%2Fextra",
        "another recipient's token": query.replace(fields["t"], parse_qs(urlsplit(other).query)["t"][0]),
        "a changed signature": query.replace(fields["s"], fields["s"][::-1]),
        "no signature": "&".join(p for p in query.split("&") if not p.startswith("s=")),
        "two URLs": query + "&u=https%3A//evil.example/",
    }
    for what, bad in tampered.items():
        with pytest.raises(BadToken):
            verify_redirect(signer, bad)
            pytest.fail(what)
    with pytest.raises(BadToken):
        verify_redirect(TokenSigner("another secret"), query)


@settings(max_examples=150, deadline=None)
@given(path=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
@example(path="a b+c&d=e#f?g%20h")
def test_any_rendered_url_survives_the_round_trip(path):
    signer = TokenSigner("k")
    token = signer.sign("spring", 7, "click")
    url = "https://shop.example/" + path
    link = Redirects(signer, "https://t.example/").url(token, url)
    assert link.startswith("https://t.example/r?t=") and not re.search(r"[\s\"'<>]", link)
    assert verify_redirect(signer, urlsplit(link).query) == (signer.verify(token, "click"), url)


def test_rewriting_keeps_what_it_does_not_track():
    source = ('<a href="{{ view_url }}">v</a><a href="#top">t</a>'
              '<a href="https://{{ host }}/x">h</a><a href="https://a.example{{ path }}">p</a>')
    assert rewrite_links(source, LinkTable()) == source
    rewritten = rewrite_links('<a href="https://A.example/{% if x %}y{% endif %}">c</a>', LinkTable())
    assert "{% filter mf_track_link(0) %}https://A.example/{% if x %}y{% endif %}" in rewritten


HOSTILE = {
    "the signer, by the name it once had": "{{ _mf_link_url('https://evil.example/login') }}",
    "the link filter, given a host": "{% filter mf_track_link('https://evil.example') %}https://evil.example/a{% endfilter %}",
    "the link filter, given a host from data":
        "{% filter mf_track_link(subscriber.website[:20]) %}{{ subscriber.website }}{% endfilter %}",
    "the link filter on a URL from data": "{% filter mf_track_link(0) %}{{ subscriber.website }}{% endfilter %}",
    "the link filter as an expression": "{{ subscriber.website | mf_track_link(0) }}",
    "an origin index from data": "{% filter mf_track_link(subscriber.n) %}https://evil.example/b{% endfilter %}",
}


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_template_signs_only_urls_on_the_literal_origins_of_its_own_links(tmp_path, payload):
    (tmp_path / "t.html.j2").write_text(f'<a href="https://shop.example/u/{{{{ subscriber.subscriber_id }}}}">me</a>'
                                        f"<p>{payload}</p>")
    (tmp_path / "t.txt.j2").write_text("hi")
    templates = CampaignTemplates("t", "Hi", {}, tmp_path, track_clicks=True)
    composed = Composer(SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com").compose(
        {**ROW, "attributes": '{"website": "https://evil.example/x", "n": 0}'})
    if not hasattr(composed, "data"):  # refused: the dry run stops, saying why
        assert composed.status == "failed" and "_mf_link_url" in composed.detail
        return
    body = message_from_bytes(composed.data, policy=default).get_body(("html",)).get_content()
    signed = [verify_redirect(TokenSigner("k"), urlsplit(html.unescape(link)).query)[1]
              for link in re.findall(r'https://t\.example/r\?[^"<\s]+', body)]
    assert signed and all(url == "https://shop.example/u/42" for url in signed), signed


def test_without_a_signer_templated_links_render_as_written(tmp_path):
    (tmp_path / "t.html.j2").write_text(HTML)
    out = CampaignTemplates("t", "Hi", {}, tmp_path, track_clicks=True).render(ROW)
    assert 'href="https://news.example/stories/2"' in out.html
