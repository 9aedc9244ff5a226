"""Where settings come from, as one tree: the config file and the MAILFLOW_* environment."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailflow.errors import MailflowError
from mailflow.relays import Relay
from mailflow.setting_values import as_list

ENV_PREFIX = "MAILFLOW_"
# Secret leaves of the settings tree (relay passwords sit inside smtp.pools.*.relays): taken verbatim
# from the environment, and never from overrides, which become Prefect flow parameters.
SECRET_KEYS = (("tracking", "secret"), ("tracking", "previous_secret"), ("dkim", "private_key"), ("dkim", "ed25519_private_key"),
               ("bounces", "imap", "password"), ("webhooks", "postmark_password"), ("webhooks", "mailgun_signing_key"),
               ("studio", "secret"))


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


def read_secret(config: str | None, keys: tuple[str | int, ...]) -> str:
    """A secret as this process finds it (config file < environment): how an unpickled Secret is read.
    Keys that end in an index name a relay in a pool's list, and the secret is its password."""
    tree = merge(read_config(config), from_environment(os.environ))
    if not isinstance(keys[-1], int):
        value = at(tree, *keys)
        return "" if value is None else str(value)
    *path, index = keys
    relays = as_list(at(tree, *path) or [], ".".join(map(str, path)))
    return Relay.parse(str(relays[index])).password.reveal() if index < len(relays) else ""


def refuse_secrets(overrides: dict[str, Any]) -> None:
    for keys in SECRET_KEYS:
        if at(overrides, *keys):
            raise MailflowError(f"overrides: {'.'.join(keys)} is a secret, and overrides become Prefect flow "
                                f"parameters, stored in its database: set {env_name(*keys)} instead")
    for name, spec in (at(overrides, "smtp", "pools") or {}).items():
        key = f"smtp.pools.{name}.relays"
        if any(Relay.parse(str(r)).password for r in as_list(at(spec, "relays") or [], key)):
            raise MailflowError(f"overrides: {key} holds a password, and overrides become Prefect flow parameters, "
                                f"stored in its database: set {env_name('smtp', 'pools', name, 'relays')} instead")


def at(tree: Any, *keys: str | int) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree
