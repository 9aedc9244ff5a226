"""What plan and send print about a send's pace: the effective shaping, the time estimate per provider group, warm-up."""

from __future__ import annotations

import click

from mailflow.cli.output import duration


def span(seconds: float) -> str:
    """An estimate in words: under a minute in seconds, else as the progress bar says it."""
    return "under 1 s" if seconds < 1 else f"{seconds:.0f} s" if seconds < 60 else duration(seconds)


def estimate_lines(d: dict) -> list[str]:
    """'shaping: none (relay pool 'default': a relay shapes for itself)' and the estimate, one line per group."""
    lines = []
    if d.get("shaping"):
        s = d["shaping"]
        limits = ""
        if s["mode"] == "providers":
            limits = "; " + ", ".join(f"{name} {lim['rate']:g}/s" if lim["rate"] else f"{name} unlimited"
                                      for name, lim in s["limits"].items()) + " per process"
        lines.append(f"  shaping: {s['mode']} ({s['why']}){limits}")
    e = d.get("estimate")
    if e and e["recipients"]:
        procs = f"{e['processes']} process{'' if e['processes'] == 1 else 'es'}"
        lines.append(f"  estimate: {e['recipients']:,} recipients due now in ~{span(e['seconds'])} over {procs} "
                     f"(at most {e['rate']:,.0f} msgs/s, {e['bound']})")
        for name, g in e["groups"].items():
            lines.append(f"    {name}: {g['recipients']:,} at {g['rate']:,.0f} msgs/s ({g['bound']}), ~{span(g['seconds'])}")
    for line in warmup_lines(d.get("warmup")):
        lines.append(line)
    return lines


def warmup_lines(w: dict | None) -> list[str]:
    """Today's caps and how the audience is spread over days, per group; why the ramp holds."""
    if not w:
        return []
    lines = [f"  warm-up of {w['pool']!r}: {w['day']} at step {w['step']}, {w['verdict']}: {w['why']}"]
    for name, g in w["groups"].items():
        cap = "no cap (warm)" if g["cap"] is None else f"cap {g['cap']:,}, {g['used']:,} used"
        later = f", {g['later']:,} on later days (last {g['last_day']})" if g["later"] else ""
        lines.append(f"    {name}: {cap}; {g['today']:,} go today{later}")
    return lines


def print_estimate(d: dict) -> None:
    for line in estimate_lines(d):
        click.echo(line)
