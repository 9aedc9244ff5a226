"""What every `mailflow` command gets: the global options, settings on demand, and output as text or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class Context:
    config: str | None
    overrides: dict[str, Any]
    as_json: bool
    debug: bool

    def settings(self):
        from mailflow.home import close_home
        from mailflow.settings import load_settings

        settings = load_settings(self.config, self.overrides)
        note = close_home(settings.home)
        if note:
            click.echo(f"mailflow: {note}", err=True)
        return settings

    def emit(self, data: Any, human) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            human(data)


pass_ctx = click.make_pass_decorator(Context)
