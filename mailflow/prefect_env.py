"""Prefect's environment defaults, set before Prefect is imported: no analytics, quiet console."""

from __future__ import annotations

import os

# No network here or at many sites: Prefect must never phone home or wait on the internet.
DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Ephemeral runs: the command prints its own summary; run logs still reach the API/UI.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
}


def prepare(verbose: bool = False) -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if verbose:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"
