"""HTML form bodies read with a size bound: url-encoded or multipart/form-data (RFC 8058 allows both)."""

from __future__ import annotations

import re
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs

from starlette.requests import Request

FORM_LIMIT = 16_384  # bytes: the largest form here is a preference page with its lists
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


class FormTooLarge(ValueError):
    """The body is larger than any form of these pages."""


async def read_form(request: Request, limit: int = FORM_LIMIT) -> dict[str, list[str]]:
    """The form's fields (each a list of values); an unreadable body is an empty form, a large one FormTooLarge."""
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise FormTooLarge(f"a form body is at most {limit} bytes")
    kind = request.headers.get("content-type", "").lower()
    if kind.startswith("multipart/form-data"):
        return _multipart(kind, bytes(body))
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return {}


def _multipart(content_type: str, body: bytes) -> dict[str, list[str]]:
    # The stdlib's MIME parser reads form-data as well as mail: no multipart package needed for a few fields
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, list[str]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        fields.setdefault(str(name), []).append(payload.decode("utf-8", "replace"))
    return fields


def one(fields: dict[str, list[str]], name: str, limit: int) -> str:
    """A field's first value, stripped, control characters removed, cut to `limit` characters ("" when absent)."""
    value = (fields.get(name) or [""])[0]
    return _CONTROL.sub("", value).strip()[:limit]
