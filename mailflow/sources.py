"""Where settings come from, as one tree: the config file and the MAILFLOW_* environment."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailflow.errors import MailflowError

ENV_PREFIX = "MAILFLOW_"
# Secret leaves of the settings tree (relay passwords sit inside smtp.pools.*.relays): taken verbatim
# from the environment, and never from overrides, which become Prefect flow parameters.
SECRET_KEYS = (("tracking", "secret"), ("tracking", "previous_secret"), ("dkim", "private_key"), ("dkim", "ed25519_private_key"))


def read_config(config: str | Path | None) -> dict[str, Any]:
    path = Path(config) if config else Path("mailflow.toml")
    if not path.exists():
        if config:
            raise MailflowError(f"{path}: config file not found")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MailflowError(f"{path}: not valid TOML ({exc})") from None


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """`MAILFLOW_SMTP__HELO=x` sets smtp.helo; values are read as TOML when they parse, secrets never."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise MailflowError(f"environment: {name} conflicts with another MAILFLOW_ variable")
        # A secret is taken as it is: read as TOML, a key like 1_000 would become 1000
        node[keys[-1]] = raw if tuple(keys) in SECRET_KEYS else _env_value(raw)
    return tree


def env_name(*keys: str) -> str:
    """The environment variable of a settings key: ("smtp", "helo") -> MAILFLOW_SMTP__HELO."""
    return ENV_PREFIX + "__".join(keys).upper()


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
