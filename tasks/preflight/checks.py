"""A preflight check's verdict (PASS / WARN / FAIL, a detail and a one-line fix) and what the settings do to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from mailflow.settings_preflight import PreflightSettings

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
ORDER = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Check:
    check: str  # one of mailflow.settings_preflight.CHECKS
    status: str  # PASS | WARN | FAIL
    detail: str  # what was found, one line
    fix: str = ""  # what to do about it, one line ("" when there is nothing to do)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def worst(checks: Iterable[Check]) -> str:
    return max((c.status for c in checks), key=ORDER.__getitem__, default=PASS)


def unchecked(name: str, why: str, fix: str = "") -> Check:
    """A check that could not be made (DNS did not answer): a WARN, never a PASS."""
    return Check(name, WARN, f"not checked: {why}", fix or "run `mailflow preflight` again where DNS answers")


def apply_settings(checks: Iterable[Check], settings: PreflightSettings) -> list[Check]:
    """`warn_only` checks report a FAIL as a WARN, saying so; `skip` ones were not run and say that."""
    out = []
    for c in checks:
        if c.check in settings.warn_only and c.status == FAIL:
            c = replace(c, status=WARN, detail=f"{c.detail} (FAIL reported as WARN: preflight.warn_only)")
        out.append(c)
    return out


def skipped(settings: PreflightSettings, names: Iterable[str]) -> list[Check]:
    return [Check(n, WARN, "not checked: listed in preflight.skip", "") for n in names if n in settings.skip]


def failures_line(checks: Iterable[Check]) -> str:
    """The failing checks in one line, for the error that stops a send."""
    return "; ".join(f"{c.check}: {c.detail}" for c in checks if c.status == FAIL)
