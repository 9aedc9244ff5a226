"""Shared fixtures: settings in a temporary home, a temporary warehouse, a real SMTP receiver."""

from __future__ import annotations

import os

# Before Prefect is imported anywhere: no analytics, no network, quiet console.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import re  # noqa: E402
from email.header import decode_header, make_header  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mailflow.settings import load_settings  # noqa: E402
from mailflow.tasks.core.warehouse import connect  # noqa: E402
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Receiver  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_umask():
    """Commands run in-process set umask 077 (as the CLI does); the next test starts from the same umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def receiver():
    """A real aiosmtpd on a free loopback port that records what it accepts and refuses gone.example."""
    with Receiver(record=True, replies={"gone.example": USER_UNKNOWN}) as rx:
        yield rx


@pytest.fixture
def settings(home: Path, receiver: Receiver):
    return load_settings(
        overrides={"home": str(home), "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{receiver.port}"], "connections": 4}}},
                   "send": {"chunk_size": 50}, "tracking": {"base_url": "https://t.example"}},
        environ={"MAILFLOW_TRACKING__SECRET": "test-secret"},
    )


@pytest.fixture
def con(home: Path):
    """A fresh, migrated warehouse file in the test's own directory."""
    with connect(home / "mailflow.duckdb") as connection:
        yield connection


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session: flows start once, not per test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def unfolded(data: bytes, name: bytes) -> bytes:
    """The raw value of header field `name` in a message, its CRLFs removed (RFC 5322 §2.2.3 unfolding)."""
    field = re.search(rb"(?mi)^" + name + rb": (.*(?:\r\n[ \t].*)*)\r\n", data).group(1)
    return field.replace(b"\r\n", b"")


def rfc2047_display_name(data: bytes, name: bytes = b"To") -> str:
    """The display name of a mailbox field as an RFC 2047 decoder reads it, which drops the white space
    between encoded-words; CPython's parser keeps a space there (tasks/compose/headers.py)."""
    value = unfolded(data, name).decode("ascii")
    if "<" not in value:
        return ""
    phrase = value.rsplit(" <", 1)[0]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return str(make_header(decode_header(phrase)))
