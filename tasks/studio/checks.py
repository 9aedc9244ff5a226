"""The checks of a template on save: compile errors refuse it; unknown variables, links, images' alt and size report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
from jinja2 import TemplateSyntaxError, nodes

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.sandbox import environment
from mailflow.tasks.preflight.checks import PASS, WARN, Check
from mailflow.tasks.preflight.content import hrefs, images_without_alt, links_check
from mailflow.tasks.studio.preview import PreviewError, campaign_spec, render_preview

COLUMNS = ("subscriber_id", "email", "first_name", "last_name")  # every subscriber row has these (chunk files)
SAMPLED_ROWS = 1_000  # rows read of each planned campaign's first chunk for the attributes subscribers have
SAMPLE = "Sample"  # what a referenced subscriber variable holds when the checks render the template


class CompileError(MailflowError):
    """The template does not compile: the message names the part and line. The save is refused."""


@dataclass(frozen=True)
class SaveChecks:
    checks: list[Check]
    links: list[tuple[str, str]]  # (the URL as written, as it goes out: tracked, or as is)


def compile_template(settings: Settings, folder: Path, name: str) -> None:
    """CompileError when the template (both parts, from `folder` first) does not compile as the send stage would."""
    try:
        CampaignTemplates(name, "{{ campaign.name }}", {"name": "", "id": ""},
                          (folder, settings.templates_dir, TEMPLATES_DIR),
                          track_opens=True, track_clicks=True)
    except MailflowError as exc:
        raise CompileError(str(exc)) from None


def subscriber_variables(folder: Path, source: str, html: bool) -> tuple[set[str], set[str]]:
    """The `subscriber.X` (and `subscriber["X"]`) names a template uses: (all of them, those under a `default`)."""
    try:
        tree = environment((folder,), html).parse(source)
    except TemplateSyntaxError:
        return set(), set()
    used, defaulted = set(), set()

    def name_of(node) -> str | None:
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name == "subscriber":
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name) and node.node.name == "subscriber" \
                and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return node.arg.value
        return None

    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if (found := name_of(node)) is not None:
            used.add(found)
    for node in tree.find_all(nodes.Filter):
        if node.name in ("default", "d") and (found := name_of(node.node)) is not None:
            defaulted.add(found)
    return used, defaulted


def known_variables(home: Path) -> set[str]:
    """Columns, and the attribute names subscribers of planned campaigns have (their first chunk files, sampled):
    what a template can count on without the warehouse."""
    known = set(COLUMNS)
    for chunk in sorted(home.glob("campaigns/*/chunks/*.parquet"))[:50]:
        try:
            frame = pl.read_parquet(chunk, n_rows=SAMPLED_ROWS)
        except (OSError, pl.exceptions.PolarsError):
            continue
        known.update(c for c in frame.columns if c != "attributes")
        if "attributes" in frame.columns:
            for text in frame["attributes"].drop_nulls().unique().head(SAMPLED_ROWS):
                known.update(_keys(text))
    return known


def _keys(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return list(value) if isinstance(value, dict) else []


def variables_check(used: set[str], defaulted: set[str], known: set[str]) -> Check:
    unknown = sorted(used - known - defaulted)
    if unknown:
        return Check("variables", WARN, f"no subscriber column or attribute provides {', '.join(unknown)}",
                     "add | default(...) to them, or check the names against the subscribers' attributes")
    return Check("variables", PASS, f"{len(used)} subscriber variable(s), each provided or with a default")


def tracked_links(html: str, table: tuple[str, ...], base_url: str) -> list[tuple[str, str]]:
    """Each link of the rendered HTML as (written, sent): a click URL maps back through the link table, a signed
    redirect through its `u`; mailflow's own and untracked links are the same both ways."""
    base, out = base_url.rstrip("/"), []
    for href in hrefs(html):
        if href.startswith(f"{base}/c/"):
            index = href.rsplit("/", 1)[1]
            out.append((table[int(index)] if index.isdigit() and int(index) < len(table) else href, href))
        elif href.startswith(f"{base}/r?"):
            out.append((parse_qs(urlsplit(href).query).get("u", [href])[0], href))
        else:
            out.append((href, href))
    return out


def save_checks(settings: Settings, folder: Path, name: str, source: str, html: bool) -> SaveChecks:
    """The checks of template `name` as saved in `folder` (compiled already): rendered for a sample subscriber whose
    every variable the template names holds "Sample"."""
    used, defaulted = subscriber_variables(folder, source, html)
    checks = [variables_check(used, defaulted, known_variables(settings.home))]
    row = {"subscriber_id": 0, "email": f"preview@{settings.smtp.bounce_domain or 'example.com'}", "attributes": "{}",
           **{v: SAMPLE for v in used if v not in ("subscriber_id", "email")}}
    try:
        preview = render_preview(settings, campaign_spec(settings, None, name, None), "A", row, folder)
    except PreviewError as exc:
        return SaveChecks([*checks, Check("render", WARN, f"not rendered for a sample subscriber: {exc}",
                                          "check the template with a real subscriber in the preview")], [])
    rendered = preview.html or ""
    links = tracked_links(rendered, preview.links, settings.tracking.base_url)
    missing = images_without_alt(rendered)
    checks += [links_check(rendered, preview.links),
               Check("alt", WARN, f"{len(missing)} image(s) without alt text: {', '.join(m[:40] for m in missing[:3])}",
                     "add alt=\"...\" saying what each image shows (many clients block images)")
               if missing else Check("alt", PASS, "every image has alt text"),
               preview.size_check]
    return SaveChecks(checks, links)
