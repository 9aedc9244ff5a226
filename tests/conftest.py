"""Shared fixtures: settings in a temporary home, a temporary warehouse, real SMTP servers (well-behaved and not), TLS and DKIM keys."""

from __future__ import annotations

import os

# Before Prefect is imported anywhere: no analytics, no network, quiet console.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import ssl  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# The support modules assert too (e.g. final_records): let pytest explain their failures.
pytest.register_assert_rewrite("tests.support")

import dkim  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from mailflow.settings import load_settings  # noqa: E402
from mailflow.tasks.core.warehouse import connect  # noqa: E402
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Receiver  # noqa: E402
from tests.support.dkimkeys import nacl_shim  # noqa: E402
from tests.support.fakesmtp import FakeSmtp, Misbehaviour  # noqa: E402
from tests.support.tls import make_certificate  # noqa: E402


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


# --- TLS, with a self-signed certificate made for 127.0.0.1 ---------------------------------


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server_tls(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def trusted(certificate, monkeypatch):
    """Default contexts (aiosmtplib's, and ours in production) trust the test certificate."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


# --- One recording SMTP server, a fixture per misbehaviour (tests/support/fakesmtp.py) ------


@pytest.fixture
def fake_smtp_address() -> tuple[str, int]:
    """Where the misbehaving servers listen: a free loopback port. A module overrides it to put one at an MX's address."""
    return "127.0.0.1", 0


@pytest.fixture
def closing_server(fake_smtp_address):
    """Accepts TCP and closes at once, before any greeting."""
    with FakeSmtp(Misbehaviour.CLOSE_ON_CONNECT, *fake_smtp_address) as server:
        yield server


@pytest.fixture
def silent_server(fake_smtp_address):
    """Accepts TCP and never says a word: the client's timeout ends the session."""
    with FakeSmtp(Misbehaviour.SILENT, *fake_smtp_address) as server:
        yield server


@pytest.fixture
def hangup_after_greeting_server(fake_smtp_address):
    """Greets with 220, then closes before answering EHLO."""
    with FakeSmtp(Misbehaviour.DROP_AFTER_GREETING, *fake_smtp_address) as server:
        yield server


@pytest.fixture
def throttling_greeting_server(fake_smtp_address):
    """Greets with 421 4.7.0 (too many connections from your IP) and closes, as providers throttle."""
    with FakeSmtp(Misbehaviour.GREETING_421, *fake_smtp_address) as server:
        yield server


@pytest.fixture
def tls_breaking_server(fake_smtp_address, server_tls):
    """Takes a message over STARTTLS, then breaks the TLS stream before its final reply."""
    with FakeSmtp(Misbehaviour.TLS_THEN_DROP, *fake_smtp_address, tls_context=server_tls) as server:
        yield server


# --- DKIM ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rsa_private():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed25519_verification():
    """dkimpy verifies Ed25519 only with PyNaCl importable; without it, a shim over `cryptography`."""
    with pytest.MonkeyPatch.context() as mp:
        if not hasattr(dkim, "nacl"):
            mp.setattr(dkim, "nacl", nacl_shim(), raising=False)
        yield
