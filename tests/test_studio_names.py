"""Template names the studio accepts: files directly in the templates folder, never a way out of it."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailflow.tasks.studio.names import BadTemplateName, template_file, template_names


@pytest.fixture
def folder(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "newsletter.html.j2").write_text("<p>hi</p>")
    (templates / "newsletter.txt.j2").write_text("hi")
    (templates / "notes.md").write_text("not a template")
    (tmp_path / "outside.html.j2").write_text("secret")
    (templates / "escape.html.j2").symlink_to(tmp_path / "outside.html.j2")
    (templates / "alias.html.j2").symlink_to(templates / "newsletter.html.j2")
    return templates


def test_a_plain_name_is_the_file_in_the_folder(folder):
    assert template_file(folder, "newsletter.html.j2") == folder.resolve() / "newsletter.html.j2"
    assert template_file(folder, "new-one_2.v2.txt.j2").parent == folder.resolve()  # need not exist yet


@pytest.mark.parametrize("name", ["../outside.html.j2", "../../etc/passwd", "/etc/passwd.html.j2", "sub/x.html.j2",
                                  "..\\x.html.j2", ".hidden.html.j2", "a..b.html.j2", "x .html.j2", "x\x00.html.j2",
                                  "x\n.html.j2", "newsletter.html", "newsletter", "", "é.html.j2", "x" * 200 + ".html.j2",
                                  "escape.html.j2", "alias.html.j2"])
def test_names_that_leave_the_folder_or_are_odd_are_refused(folder, name):
    with pytest.raises(BadTemplateName):
        template_file(folder, name)


def test_the_listing_shows_template_files_only_and_no_symlinks(folder):
    assert template_names(folder) == ["newsletter.html.j2", "newsletter.txt.j2"]
    assert template_names(folder / "missing") == []


@given(st.text(max_size=40))
@example("../x.html.j2")
@example("..%2fx.html.j2")
@example("./x.html.j2")
def test_any_name_accepted_is_a_direct_child_of_the_folder(tmp_path_factory, name):
    folder = tmp_path_factory.getbasetemp() / "names-property"
    folder.mkdir(exist_ok=True)
    try:
        path = template_file(folder, name)
    except BadTemplateName:
        return
    assert path.parent == folder.resolve() and path.name == name and not name.startswith(".")
