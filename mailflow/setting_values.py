"""Settings values checked one at a time: each error is one line naming the key and what is wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from mailflow.errors import MailflowError
from mailflow.relays import is_ip


def moment(value: Any, key: str) -> datetime | None:
    """An ISO date or date and time (TOML's own, or text); a date means 00:00 that day, and no zone means UTC."""
    if value in ("", None):
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        moment = datetime.combine(value, datetime.min.time())
    if not isinstance(moment, datetime):
        raise MailflowError(f"settings: {key} must be an ISO date or date and time "
                            f"(2027-01-31 or 2027-01-31T12:00:00+09:00), not {str(value)!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def base_url(value: Any, key: str) -> str:
    """An http(s) URL with a host and no query or fragment: the prefix of every link in sent mail, so a
    typo here (no scheme, another scheme) would otherwise be found only in people's inboxes."""
    text = str(value).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if (parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query
            or parts.fragment or "?" in text or "#" in text or any(c.isspace() or ord(c) < 32 for c in text)):
        raise MailflowError(f"settings: {key} must be an http(s) URL with a host, such as https://t.example.com, "
                            f"not {text!r}")
    return text


def list_names(value: Any, key: str) -> tuple[str, ...]:
    names = tuple(str(n) for n in as_list(value, key))
    for name in names:
        if not name.strip() or "/" in name or name != name.strip():
            raise MailflowError(f"settings: {key} must list list names (no '/', no surrounding spaces), not {name!r}")
    return names


def positive_number(value: Any, key: str) -> float:
    if non_negative(value, key) <= 0:
        raise MailflowError(f"settings: {key} must be a number > 0, not {value!r}")
    return float(value)


def no_line_break(key: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise MailflowError(f"settings: {key} must not contain a line break")
    return value


def ip(text: str, key: str) -> str:
    if not is_ip(text):
        raise MailflowError(f"settings: {key} must list IP addresses, not {text!r}")
    return text


def non_negative(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MailflowError(f"settings: {key} must be a number >= 0, not {value!r}")
    return float(value)


def one_of(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise MailflowError(f"settings: {key} must be one of {', '.join(choices)}, not {value!r}")
    return value


def as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return value
    raise MailflowError(f"settings: {key} must be a list of host:port strings")


def positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MailflowError(f"settings: {key} must be a positive integer, not {value!r}")
    return value


def non_negative_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MailflowError(f"settings: {key} must be a whole number >= 0, not {value!r}")
    return value
