"""The spam check: the sample message scored by SpamAssassin, local rules only, with a private home and preferences."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

from mailflow.settings_preflight import PreflightSettings
from mailflow.tasks.preflight.checks import FAIL, PASS, WARN, Check

_STATUS = re.compile(rb"^X-Spam-Status: (?:Yes|No), score=(-?[\d.]+) required=(-?[\d.]+)", re.MULTILINE)
_RULE = re.compile(rb"^\s*(-?\d+\.\d+) ([A-Z0-9_]+)\s", re.MULTILINE)


@dataclass(frozen=True)
class SpamScore:
    score: float
    rules: list[tuple[str, float]]  # (rule, points), the heaviest first


class SpamAssassinMissing(Exception):
    """The spamassassin command is not installed (or not where the settings say)."""


def score_message(data: bytes, command: str = "spamassassin", timeout: float = 120.0) -> SpamScore:
    """Run `spamassassin -L -t -x`: local tests only (no DNS blocklists, no Razor/Pyzor/DCC), test mode (the report is
    appended, nothing learnt), no user config created; its HOME and user preferences are a throwaway folder's,
    so neither the system user's preferences nor the network are ever read."""
    with tempfile.TemporaryDirectory(prefix="mailflow-sa-") as private:
        prefs = os.path.join(private, "user_prefs")
        open(prefs, "w").close()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": private, "LANG": "C.UTF-8"}
        try:
            run = subprocess.run([command, "-L", "-t", "-x", "-p", prefs], input=data, capture_output=True,
                                 timeout=timeout, env=env, cwd=private, check=False)
        except FileNotFoundError:
            raise SpamAssassinMissing(command) from None
    found = _STATUS.search(run.stdout)
    if run.returncode != 0 or not found:
        err = run.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"spamassassin exited {run.returncode}: {err[-1] if err else 'no score in its output'}")
    report = run.stdout[run.stdout.find(b"Content analysis details"):]
    rules = sorted(((m.group(2).decode(), float(m.group(1))) for m in _RULE.finditer(report)), key=lambda r: -r[1])
    return SpamScore(float(found.group(1)), rules)


def spam_check(data: bytes, settings: PreflightSettings) -> Check:
    try:
        scored = score_message(data, settings.spamassassin, settings.spam_timeout)
    except SpamAssassinMissing:
        return Check("spam", WARN, f"not checked: SpamAssassin is not installed ({settings.spamassassin!r} not found)",
                     "install it (Debian: apt-get install spamassassin) or set preflight.spamassassin")
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return Check("spam", WARN, f"not checked: {str(exc).splitlines()[0]}", "run `spamassassin -L -t < sample.eml` to see why")
    limit = settings.spam_threshold
    top = ", ".join(f"{rule} ({points:+.1f})" for rule, points in scored.rules if points > 0)[:200] or "no rule scored"
    detail = f"SpamAssassin score {scored.score:.1f} (threshold {limit:g}; local rules): {top}"
    fix = "rewrite what the top rules flag in the template and subject"
    if scored.score >= limit:
        return Check("spam", FAIL, detail, fix)
    if scored.score >= limit - settings.spam_margin:
        return Check("spam", WARN, detail + " - near the threshold", fix)
    return Check("spam", PASS, detail)
