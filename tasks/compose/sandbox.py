"""The templates' sandbox: an immutable Jinja2 environment with bounded operators, cheap output escaping and the link filter."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

try:
    from markupsafe import _escape_inner  # the C (or pure Python) core of escape(), markupsafe 2.1+
except ImportError:  # pragma: no cover - another markupsafe: output escaping stays as Jinja has it
    _escape_inner = None

from mailflow.tasks.compose.tracking import TRACK_FILTER, attribute_url

_DICT_ATTRIBUTES = frozenset(dir(dict))
_MAX_RESULT = 1_000_000  # characters or items a template's `*` may make, and bits its `**` may
# The signer of the templated links of the render under way. It is in no template's variables, so
# no template can name it: a template that could call it would sign a URL of its own choosing
# (`{{ _mf_link_url('https://evil.example/') }}` once did). Set by render(), read by the link filter.
LINK_SIGNER: ContextVar[Callable[[str], str] | None] = ContextVar("mailflow_link_signer", default=None)


def _escape_output(value: Any) -> Any:
    """Escape for `{{ ... }}` output: the same text as markupsafe.escape, without wrapping it in
    Markup (≈0.3 µs, 90 times a message in a digest) where it only goes to the output."""
    kind = value.__class__
    if kind is str:
        return _escape_inner(value)
    if kind is int:
        return str(value)  # digits and a sign need no escaping
    return escape(value)


def plain_output_escape(template: Template) -> Template:
    # Jinja's compiled code calls the module-level name `escape` only around output (compiler.py,
    # _output_child_pre); an output item is joined into the page or a Markup buffer, never kept.
    # Only markupsafe's own escape is replaced, so another Jinja's code stays as it was.
    namespace = template.root_render_func.__globals__
    if _escape_inner is not None and namespace.get("escape") is escape:
        namespace["escape"] = _escape_output
    return template


class _Sandbox(ImmutableSandboxedEnvironment):
    # Sandboxed and immutable: a template cannot reach Python internals or mutate data.
    # Jinja caps range() at 100,000 items; one operator can still ask for gigabytes or hours
    # (`'x' * 10**10`, `9 ** 9 ** 9`), so those two are checked before they run.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and type(left) is int and type(right) is int and abs(left) > 1 \
                and right * left.bit_length() > _MAX_RESULT:
            raise SecurityError(f"{left} ** {right} is too large a number for a template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and type(count) is int \
                        and len(sequence) * count > _MAX_RESULT:
                    raise SecurityError(f"a repetition of {len(sequence) * count} items is too large for a template")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `subscriber.first_name` on a dict: the sandbox tries getattr() first, whose AttributeError
        # costs more than the item lookup it falls back to; a plain dict has no other attributes
        # than dict's own, so going straight to the item gives the same result, cheaper
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _link_filter(origins: list[str]) -> Callable[[str, int], str]:
    """The filter rewrite_links puts around a templated href: `{% filter mf_track_link(N) %}`.

    N indexes the literal origins this compile recorded, never a string from the template, so
    whoever calls the filter can only sign URLs on an origin that an href of the template spells out.
    """
    def track_link(value: str, index: int) -> str:
        sign = LINK_SIGNER.get()
        if sign is None or type(index) is not int or not 0 <= index < len(origins):
            return value
        url = attribute_url(str(value), origins[index])
        return value if url is None else escape(sign(url))
    return track_link


def environment(directories: tuple[Path, ...], html: bool, origins: list[str] | None = None) -> ImmutableSandboxedEnvironment:
    # StrictUndefined: a misspelt field fails the dry run instead of sending blanks. The loader searches
    # the folders in order: a user's template may extend or include a built-in one by its name.
    env = _Sandbox(loader=FileSystemLoader([str(d) for d in directories]), undefined=StrictUndefined, autoescape=html,
                   keep_trailing_newline=True)
    if origins is not None:  # only the HTML part has rewritten links
        env.filters[TRACK_FILTER] = _link_filter(origins)
    return env
