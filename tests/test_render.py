"""Templates and messages: sandboxed, strict, escaped, and no header injection."""

import os
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from mailflow.tasks.compose.message import HeaderInjection, build_message
from mailflow.tasks.compose.render import CampaignTemplates, RenderError, subscriber_context

CAMPAIGN = {"name": "News", "id": "news"}


def templates(tmp_path, html="<p>{{ subscriber.first_name }}</p>", text="{{ subscriber.first_name }}", subject="Hi"):
    (tmp_path / "t.html.j2").write_text(html)
    (tmp_path / "t.txt.j2").write_text(text)
    return CampaignTemplates("t", subject, CAMPAIGN, tmp_path)


def test_columns_and_attributes_are_one_mapping():
    ctx = subscriber_context({"email": "a@x.y", "first_name": None, "attributes": '{"first_name": "Attr", "plan": "pro"}'})
    assert ctx["first_name"] == "Attr" and ctx["plan"] == "pro"
    ctx = subscriber_context({"first_name": "Col", "attributes": '{"first_name": "Attr"}'})
    assert ctx["first_name"] == "Col"


def test_sample_template_renders_with_defaults():
    t = CampaignTemplates("newsletter", "Hello {{ subscriber.first_name | default('friend') }}", CAMPAIGN)
    out = t.render({"email": "a@example.com", "attributes": "{}"})
    assert out.subject == "Hello friend"
    assert "Hello friend," in out.text and "Hello friend," in out.html


def test_html_is_escaped_text_is_not(tmp_path):
    out = templates(tmp_path).render({"first_name": "<b>Tom & Jerry</b>"})
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in out.html
    assert out.text == "<b>Tom & Jerry</b>"


def test_undefined_field_fails_instead_of_sending_blanks(tmp_path):
    with pytest.raises(RenderError, match="UndefinedError"):
        templates(tmp_path, text="{{ subscriber.no_such_field }}").render({"first_name": "A"})


@pytest.mark.parametrize(
    "payload",
    [
        "{{ subscriber.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ campaign.update({'name': 'x'}) }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self._TemplateReference__context }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ joiner.__call__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ click_url.__closure__ }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ '{0.__class__}'|attr('format')(1) }}",
        "{{ range(1000000)|length }}",
    ],
)
def test_sandbox_refuses_escapes(tmp_path, payload):
    with pytest.raises(RenderError):
        templates(tmp_path, text=payload).render({"first_name": "A"})


@pytest.mark.parametrize("payload", ["{{ ('x' * 10 ** 8)|length }}", "{{ ([0] * 10 ** 8)|length }}",
                                     "{{ (10 ** (10 ** 7)) % 7 }}"])
def test_one_operator_cannot_ask_a_template_for_gigabytes(tmp_path, payload):
    with pytest.raises(RenderError, match="too large"):
        templates(tmp_path, text=payload).render({"first_name": "A"})
    assert templates(tmp_path, text="{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ [0] * 2 }}").render({"first_name": "A"}).text == "ababab 1024 [0, 0]"


def test_subject_is_one_line(tmp_path):
    out = templates(tmp_path, subject="Hi\n{{ subscriber.first_name }}").render({"first_name": "A"})
    assert out.subject == "Hi A"


def build(**overrides):
    fields = dict(from_addr="News <news@example.com>", to_email="ann@example.com", to_name="Ann Müller",
                  subject="Héllo", html="<p>hi</p>", text="hi", reply_to="help@example.com")
    return build_message(**(fields | overrides))


def test_message_parses_back_with_parts_and_headers():
    msg = message_from_bytes(build(), policy=default)
    assert msg["Subject"] == "Héllo"
    assert msg["To"].addresses[0].display_name == "Ann Müller"
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert msg["Reply-To"] == "help@example.com" and msg["Message-ID"].endswith("@example.com>")
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().strip() == "hi"
    assert b"\r\n" in build() and b"\n" not in build().replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "field,value",
    [("subject", "Hi\r\nBcc: victim@example.org"), ("to_name", "Ann\nBcc: x@y.z"),
     ("to_email", "a@b.c\r\nX: y"), ("from_addr", "a@b.c\x00")],
)
def test_header_injection_is_refused(field, value):
    with pytest.raises(HeaderInjection):
        build(**{field: value})


NASTY = {"first_name": "<script>&'\"", "plan": "free", "country": 7, "score": 1.5, "vip": True,
         "items": "an attribute named like a dict method", "html": Markup("<b>trusted</b>")}
PROBES = ("{{ subscriber.first_name }} {{ subscriber.country }} {{ subscriber.score }} {{ subscriber.vip }} "
          "{{ subscriber.html }} {{ subscriber.missing | default('d') }} {{ subscriber['items'] }} "
          "{{ subscriber.items is callable }} {{ subscriber.keys() | sort | join(',') }} "
          "{{ subscriber.update is defined }} {% for n in range(3) %}{{ n }}{{ -n }}{% endfor %}")


@pytest.mark.parametrize("name", ["digest", "newsletter", None])
def test_faster_lookups_and_escaping_render_exactly_as_jinja_does(tmp_path, name):
    from mailflow import TEMPLATES_DIR

    source = (TEMPLATES_DIR / f"{name}.html.j2").read_text() if name else PROBES
    (tmp_path / "t.html.j2").write_text(source)
    ours = CampaignTemplates("t", "s", CAMPAIGN, tmp_path).html
    reference = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True,
                                              keep_trailing_newline=True).from_string(ours_source(tmp_path))
    for subscriber in (NASTY, {**NASTY, "plan": "pro", "first_name": "Ann"}):
        context = {"subscriber": subscriber, "campaign": CAMPAIGN, "unsubscribe_url": "https://t/u?a=1&b=2",
                   "view_url": "https://t/v", "subject": "<Hi>", "preheader": "Preview <b>&"}
        assert ours.render(context) == reference.render(context)


def test_the_newsletter_shows_a_preheader_hidden_and_nothing_without_one():
    with_one = CampaignTemplates("newsletter", "Hi", CAMPAIGN, preheader="Sale <ends> Friday").render({"email": "a@x.y"})
    hidden = with_one.html.split("Sale &lt;ends&gt; Friday")[0].rsplit("<div", 1)[1]
    assert "display:none" in hidden and "Sale" not in with_one.text
    without = CampaignTemplates("newsletter", "Hi", CAMPAIGN).render({"email": "a@x.y"})
    assert "display:none" not in without.html


def ours_source(directory) -> str:
    from mailflow.tasks.compose.render import _inline

    return _inline((directory / "t.html.j2").read_text())


def test_an_edited_template_is_compiled_again(tmp_path):
    assert templates(tmp_path, text="one").render({"first_name": "A"}).text == "one"
    assert templates(tmp_path, text="two").render({"first_name": "A"}).text == "two"
    assert templates(tmp_path, text="two").text is templates(tmp_path, text="two").text, "compiled once"


# -- user-owned templates: the user's folder first, then the built-in ones -----------------------

def test_a_user_template_is_found_before_a_built_in_of_the_same_name(tmp_path):
    from mailflow import TEMPLATES_DIR

    (tmp_path / "newsletter.txt.j2").write_text("ours, {{ subscriber.first_name }}")
    out = CampaignTemplates("newsletter", "Hi", CAMPAIGN, (tmp_path, TEMPLATES_DIR)).render({"first_name": "Ann"})
    assert out.text == "ours, Ann"
    assert out.html is None, "the user's variant is not mixed with the built-in HTML part"


def test_a_user_template_may_include_a_built_in_one_and_built_ins_stay_reachable(tmp_path):
    from mailflow import TEMPLATES_DIR

    (tmp_path / "mine.txt.j2").write_text('P.S. {% include "newsletter.txt.j2" %}')
    folders = (tmp_path, TEMPLATES_DIR)
    mine = CampaignTemplates("mine", "Hi", CAMPAIGN, folders).render({"email": "a@example.com", "attributes": "{}"})
    builtin = CampaignTemplates("newsletter", "Hi", CAMPAIGN, folders).render({"email": "a@example.com",
                                                                               "attributes": "{}"})
    assert mine.text.startswith("P.S. ") and builtin.text in mine.text and "Hello friend," in mine.text
    assert builtin.html is not None, "a name only the built-ins have is still found there"


def test_a_missing_template_names_every_folder_looked_in(tmp_path):
    from mailflow import TEMPLATES_DIR
    from mailflow.errors import MailflowError

    with pytest.raises(MailflowError, match="neither") as err:
        CampaignTemplates("absent", "Hi", CAMPAIGN, (tmp_path, TEMPLATES_DIR))
    assert str(tmp_path / "absent.html.j2") in str(err.value) and str(TEMPLATES_DIR / "absent.txt.j2") in str(err.value)


def test_the_send_stage_reads_templates_from_the_templates_dir_setting(tmp_path):
    from mailflow import SAMPLES_DIR
    from mailflow.settings import load_settings
    from mailflow.tasks.plan.campaign import load_campaign
    from mailflow.tasks.send.chunk import composer_for

    (tmp_path / "newsletter.txt.j2").write_text("from the user's folder")
    settings = load_settings(overrides={"home": str(tmp_path / "home"), "templates_dir": str(tmp_path)},
                             environ={"MAILFLOW_TRACKING__SECRET": "s" * 32})
    assert settings.templates_dir == tmp_path
    assert load_settings(environ={}).templates_dir.as_posix() == "templates", "default: ./templates"
    spec = load_campaign(SAMPLES_DIR / "campaign.yaml")
    assert spec.template == "newsletter"
    out = composer_for(settings, spec).templates.render({"email": "a@example.com", "attributes": "{}"})
    assert out.text == "from the user's folder"


def test_templates_see_the_name_of_the_variant_they_render(tmp_path):
    (tmp_path / "t.txt.j2").write_text("variant {{ variant }}")
    for name in ("A", "B"):
        out = CampaignTemplates("t", "{{ variant }}: news", CAMPAIGN, tmp_path, variant=name).render({"email": "a@x.y"})
        assert (out.subject, out.text) == (f"{name}: news", f"variant {name}")


GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_ROW = {"subscriber_id": 7, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
              "attributes": '{"plan": "pro", "country": "JP"}'}


def sample_render(name: str):
    """A sample template as a recipient sees it: tracked, with the links a send signs (fixed secret, so fixed tokens)."""
    from mailflow.tasks.compose.compose import Composer
    from mailflow.tasks.compose.tokens import TokenSigner
    from mailflow.tasks.plan.campaign import CampaignSpec

    spec = CampaignSpec(name="News", campaign_id="news", from_addr="news@example.com", subject="Hi", template=name)
    templates = CampaignTemplates(name, spec.subject, CAMPAIGN, track_opens=True, track_clicks=True)
    helpers, _ = Composer(spec, templates, TokenSigner("golden"), "https://t.example", "bounces.example.com").helpers(7)
    return templates.render(GOLDEN_ROW, helpers), helpers


@pytest.mark.parametrize("name", ["newsletter", "digest"])
def test_the_sample_templates_render_as_their_golden_files(name):
    # A change to what recipients see shows up as a diff of tests/data/golden; accept one with
    # MAILFLOW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render.py -k golden
    rendered, _ = sample_render(name)
    for path, text in ((GOLDEN / f"{name}.html", rendered.html), (GOLDEN / f"{name}.txt", rendered.text)):
        if os.environ.get("MAILFLOW_UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert text == path.read_text(), f"{path.name} changed: check it, then accept it with MAILFLOW_UPDATE_GOLDEN=1"


def test_the_newsletter_shows_visible_unsubscribe_and_view_in_browser_links():
    rendered, helpers = sample_render("newsletter")
    footer = rendered.html.rsplit("You receive this", 1)[1]
    assert f'<a href="{helpers.view_url}"' in footer and ">View in browser</a>" in footer
    assert f'<a href="{helpers.unsubscribe_url}"' in footer and ">Unsubscribe</a>" in footer
    assert f"View in browser: {helpers.view_url}\n" in rendered.text and f"Unsubscribe: {helpers.unsubscribe_url}\n" in rendered.text
    bare = CampaignTemplates("newsletter", "Hi", CAMPAIGN).render(GOLDEN_ROW)  # no links to show (a preview): no empty labels
    assert "Unsubscribe" not in bare.html + bare.text and "View in browser" not in bare.html + bare.text
