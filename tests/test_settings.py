"""Settings: defaults < file < environment < overrides, frozen, with clear errors."""

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import Relay, load_settings


def test_defaults_need_no_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.home == Path("data")
    assert s.warehouse == Path("data/mailflow.duckdb")
    assert [str(r) for r in s.pool("default").relays] == ["127.0.0.1:2525"]


def test_file_then_environment_then_overrides(tmp_path):
    config = tmp_path / "m.toml"
    config.write_text('home = "from-file"\n[smtp]\nhelo = "file.example"\n[smtp.pools.bulk]\nrelays = ["10.0.0.1:25"]\nconnections = 3\n')
    env = {"MAILFLOW_SMTP__HELO": "env.example", "MAILFLOW_SMTP__POOLS__BULK__CONNECTIONS": "5", "OTHER": "x"}
    s = load_settings(config, overrides={"home": "over"}, environ=env)
    assert s.home == Path("over")
    assert s.smtp.helo == "env.example"
    assert s.pool("bulk").connections == 5
    assert s.pool("bulk").relays[0].host == "10.0.0.1"


def test_settings_are_frozen():
    s = load_settings(environ={})
    with pytest.raises(AttributeError):
        s.home = Path("elsewhere")  # type: ignore[misc]


def test_relay_with_credentials_and_tls():
    r = Relay.parse("user%40x:p%3Ass@smtp.example.com:587?tls=starttls")
    assert (r.host, r.port, r.username, r.password.reveal(), r.tls) == ("smtp.example.com", 587, "user@x", "p:ss", "starttls")
    assert "p:ss" not in repr(r)


def test_relay_weight_and_source_address():
    r = Relay.parse("relay.example.com:25?weight=3&source=192.0.2.7")
    assert (r.weight, r.source, r.tls) == (3, "192.0.2.7", "none")


@pytest.mark.parametrize("text", ["", "host:notaport", "host:25?tls=maybe", "host:25?weight=0",
                                  "host:25?weight=x", "host:25?source=not-an-ip"])
def test_bad_relay_is_a_clear_error(text):
    with pytest.raises(MailflowError, match="relay"):
        Relay.parse(text)


def test_missing_config_file_and_bad_toml(tmp_path):
    with pytest.raises(MailflowError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("home = [")
    with pytest.raises(MailflowError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_bad_value_names_the_key():
    with pytest.raises(MailflowError, match="send.chunk_size"):
        load_settings(environ={"MAILFLOW_SEND__CHUNK_SIZE": "0"})


def test_unknown_pool_lists_known_ones():
    with pytest.raises(MailflowError, match="known: default"):
        load_settings(environ={}).pool("mx")


def test_example_config_parses():
    example = Path(__file__).parent.parent / "mailflow.example.toml"
    s = load_settings(example, environ={})
    assert s.pool("default").connections >= 1


@pytest.mark.parametrize("overrides,needle", [
    ({"shaping": {"hotmail": {"rate": 1}}}, "unknown provider group"),
    ({"shaping": {"gmail": {"rate": -1}}}, "shaping.gmail.rate"),
    ({"smtp": {"pools": {"default": {"relays": ["h:25"], "choose": "random"}}}}, "choose"),
    ({"smtp": {"mx_sources": ["nope"]}}, "smtp.mx_sources"),
    ({"send": {"rate": "fast"}}, "send.rate"),
])
def test_bad_shaping_and_transport_settings_are_clear_errors(overrides, needle):
    with pytest.raises(MailflowError, match=needle):
        load_settings(overrides=overrides, environ={})


@pytest.mark.parametrize("url", ["t.example.com", "ftp://t.example.com", "https://", "https://t.example.com/?x=1",
                                 "https://t.example.com/#top", "https://t.example.com:99999", "https://t.ex ample.com"])
def test_a_tracking_base_url_that_is_no_http_url_with_a_host_is_refused_naming_the_key(url):
    # Every link in sent mail starts with it: a typo would otherwise show only as broken links in inboxes
    with pytest.raises(MailflowError, match="tracking.base_url must be an http\\(s\\) URL with a host"):
        load_settings(environ={"MAILFLOW_TRACKING__BASE_URL": url})


@pytest.mark.parametrize("url", ["https://t.example.com", "http://127.0.0.1:8080/", "https://example.com/track"])
def test_a_tracking_base_url_with_a_scheme_and_host_is_taken(url):
    assert load_settings(environ={"MAILFLOW_TRACKING__BASE_URL": url}).tracking.base_url == url


def test_shaping_overrides_one_key_and_keeps_the_other_defaults():
    s = load_settings(overrides={"shaping": {"gmail": {"rate": 5}}}, environ={})
    assert s.shaping["gmail"].rate == 5.0 and s.shaping["gmail"].connections == 4
    assert s.shaping["yahoo"].rate == 20.0


SECRETS = {"MAILFLOW_TRACKING__SECRET": "tok-3f9a1c", "MAILFLOW_DKIM__PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nkey-77e0\n",
           "MAILFLOW_TRACKING__PREVIOUS_SECRET": "old-60b2", "MAILFLOW_TRACKING__PREVIOUS_UNTIL": "2027-01-31",
           "MAILFLOW_SMTP__POOLS__BULK__RELAYS": '["10.0.0.1:25", "mailer:pw-51d2@10.0.0.2:587?tls=starttls"]'}


def test_settings_pickled_into_a_worker_carry_no_secret_and_it_rereads_them(monkeypatch, tmp_path):
    import pickle

    import cloudpickle

    monkeypatch.chdir(tmp_path)
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(environ=SECRETS)
    relay = settings.pool("bulk").relays[1]
    assert (settings.tracking.secret.reveal(), relay.password.reveal()) == ("tok-3f9a1c", "pw-51d2")
    shown = [repr(settings), str(settings.tracking.secret), f"{relay.password}", pickle.dumps(settings),
             cloudpickle.dumps(settings)]  # what Prefect prints, logs, or pickles for a process pool
    for needle in ("tok-3f9a1c", "key-77e0", "pw-51d2", "old-60b2"):
        assert not any(needle in (s if isinstance(s, str) else s.decode("latin-1")) for s in shown), needle

    # The worker process: the secrets are read from its environment, as Prefect's process pool passes it on.
    unset = pickle.loads(pickle.dumps(settings))
    assert not unset.tracking.secret and not unset.pool("bulk").relays[1].password
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    worker = pickle.loads(cloudpickle.dumps(settings))
    assert worker.tracking.secret.reveal() == "tok-3f9a1c" and worker.tracking.previous_secret.reveal() == "old-60b2"
    assert worker.dkim.private_key.reveal() == SECRETS["MAILFLOW_DKIM__PRIVATE_KEY"]
    assert worker.pool("bulk").relays[1].password.reveal() == "pw-51d2" and not worker.pool("bulk").relays[0].password


def test_a_secret_in_the_config_file_is_read_there_again_after_pickling(tmp_path):
    import pickle

    config = tmp_path / "m.toml"
    config.write_text('[tracking]\nsecret = "from-file-9c"\n')
    settings = load_settings(config, environ={})
    pickled = pickle.dumps(settings)
    assert b"from-file-9c" not in pickled
    assert pickle.loads(pickled).tracking.secret.reveal() == "from-file-9c"


@pytest.mark.parametrize("overrides,needle", [
    ({"tracking": {"secret": "s"}}, "MAILFLOW_TRACKING__SECRET"),
    ({"tracking": {"previous_secret": "s", "previous_until": "2027-01-31"}}, "MAILFLOW_TRACKING__PREVIOUS_SECRET"),
    ({"dkim": {"private_key": "k"}}, "MAILFLOW_DKIM__PRIVATE_KEY"),
    ({"dkim": {"ed25519_private_key": "k"}}, "MAILFLOW_DKIM__ED25519_PRIVATE_KEY"),
    ({"smtp": {"pools": {"bulk": {"relays": ["u:pw-0@h:25"]}}}}, "MAILFLOW_SMTP__POOLS__BULK__RELAYS"),
])
def test_overrides_never_carry_a_secret(overrides, needle):
    # Overrides are what flows take as parameters: Prefect stores those and shows them in its UI.
    with pytest.raises(MailflowError, match=needle) as caught:
        load_settings(overrides=overrides, environ={})
    assert "pw-0" not in str(caught.value)


def test_secrets_are_taken_verbatim_from_the_environment():
    settings = load_settings(environ={"MAILFLOW_TRACKING__SECRET": "1_000", "MAILFLOW_DKIM__PRIVATE_KEY": "true",
                                      "MAILFLOW_TRACKING__PREVIOUS_SECRET": "2_000", "MAILFLOW_TRACKING__PREVIOUS_UNTIL": "2027-01-31"})
    assert (settings.tracking.secret.reveal(), settings.dkim.private_key.reveal()) == ("1_000", "true")
    assert settings.tracking.previous_secret.reveal() == "2_000"


@pytest.mark.parametrize("written,expected", [
    ('"2027-01-31"', datetime(2027, 1, 31, tzinfo=UTC)),  # a date: 00:00 UTC that day
    ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),  # TOML's own date
    ("2027-01-31T09:30:00", datetime(2027, 1, 31, 9, 30, tzinfo=UTC)),  # no zone: UTC
    ('"2027-01-31 09:30+09:00"', datetime(2027, 1, 31, 0, 30, tzinfo=UTC)),
    ("2027-01-31T09:30:00Z", datetime(2027, 1, 31, 9, 30, tzinfo=UTC)),
])
def test_the_previous_tracking_secret_verifies_until_an_iso_date_or_time(tmp_path, written, expected):
    config = tmp_path / "m.toml"
    config.write_text(f"[tracking]\nprevious_until = {written}\n")
    tracking = load_settings(config, environ={"MAILFLOW_TRACKING__PREVIOUS_SECRET": "old"}).tracking
    assert tracking.previous_until == expected and tracking.previous_secret.reveal() == "old"
    env = {"MAILFLOW_TRACKING__PREVIOUS_SECRET": "old", "MAILFLOW_TRACKING__PREVIOUS_UNTIL": written.strip('"')}
    assert load_settings(environ=env).tracking.previous_until == expected


@pytest.mark.parametrize("env,needle", [
    ({"MAILFLOW_TRACKING__PREVIOUS_SECRET": "old"}, "tracking.previous_until is required when tracking.previous_secret is set"),
    ({"MAILFLOW_TRACKING__PREVIOUS_SECRET": "old", "MAILFLOW_TRACKING__PREVIOUS_UNTIL": "next week"},
     "tracking.previous_until must be an ISO date or date and time .* not 'next week'"),
    ({"MAILFLOW_TRACKING__PREVIOUS_UNTIL": "09:30:00"}, "tracking.previous_until must be .* not '09:30:00'"),
])
def test_a_previous_secret_without_a_valid_end_is_a_one_line_error(env, needle):
    with pytest.raises(MailflowError, match=needle) as caught:
        load_settings(environ=env)
    assert "\n" not in str(caught.value) and "old" not in str(caught.value)


def test_a_bad_relay_is_named_without_its_password():
    with pytest.raises(MailflowError) as caught:
        Relay.parse("mailer:pw-83aa@smtp.example.com:25?tls=maybe")
    assert "pw-83aa" not in str(caught.value) and "mailer:***@smtp.example.com:25" in str(caught.value)


def test_the_imap_password_comes_from_the_environment_as_a_secret_and_is_refused_as_an_override(monkeypatch):
    monkeypatch.setenv("MAILFLOW_BOUNCES__IMAP__PASSWORD", "hunter2")
    s = load_settings()
    assert s.bounce_imap_password.reveal() == "hunter2" and "hunter2" not in repr(s)
    assert s.bounce_imap_processed_folder == "Processed"
    pickled = pickle.dumps(s.bounce_imap_password)
    assert b"hunter2" not in pickled and pickle.loads(pickled).reveal() == "hunter2"  # read again where unpickled
    with pytest.raises(MailflowError, match="bounces.imap.password is a secret"):
        load_settings(overrides={"bounces": {"imap": {"password": "hunter2"}}}, environ={})
