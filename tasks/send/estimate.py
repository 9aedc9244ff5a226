"""How long a send will take, per provider group: the effective shaping, the global rate and the compose cost."""

from __future__ import annotations

import math
import os
from datetime import datetime

from mailflow.providers import OTHER
from mailflow.settings import Settings
from mailflow.tasks.deliver.transport import Shaping, effective_shaping
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.schedule import planned_chunks, schedule

# CPU per message (render, MIME, DKIM, the client) by signature, measured by the send engine
# (DESIGN.md, 2026-11-28): RSA-2048 signing is 0.35-0.40 ms of the 1.1 ms, Ed25519 34 us.
COMPOSE_SECONDS = {"rsa-sha256": 0.0011, "ed25519-sha256": 0.00075, "both": 0.00114, "": 0.00072}


def estimate_send(shaping: Shaping, groups: dict[str, int], processes: int, global_rate: float = 0.0,
                  compose_seconds: float = COMPOSE_SECONDS["rsa-sha256"]) -> dict:
    """Each group goes at the slowest of its provider rate (per process, so times the processes),
    the global rate and what the processes can compose; the send lasts as long as its slowest group,
    or as long as all of it takes at the overall rate, whichever is longer."""
    processes = max(processes, 1)
    compose = processes / compose_seconds
    overall, bound = (global_rate, "global rate") if 0 < global_rate < compose else (compose, "compose CPU")
    rows = {}
    for name, count in sorted(groups.items(), key=lambda kv: (kv[0] == OTHER, kv[0])):
        limits = shaping.limits.get(name, shaping.limits[OTHER])
        provider = limits.rate * processes if limits.rate > 0 else math.inf
        rate, why = (provider, "provider limit") if provider < overall else (overall, bound)
        rows[name] = {"recipients": count, "rate": round(rate, 1), "bound": why, "seconds": round(count / rate, 1)}
    total = sum(groups.values())
    seconds = max([total / overall, *(r["seconds"] for r in rows.values())]) if total else 0.0
    return {"recipients": total, "processes": processes, "rate": round(overall, 1), "bound": bound,
            "seconds": round(seconds, 1), "groups": rows}


def send_estimate(settings: Settings, campaign_id: str, now: datetime, processes: int | None = None) -> dict:
    """The effective shaping of a planned campaign's transport and the estimate for its chunks due now
    (one sending process per core, no more than there are chunks), from the manifest alone."""
    manifest = read_manifest(settings.home, campaign_id)
    spec = CampaignSpec.from_dict(manifest["spec"])
    due = schedule(planned_chunks(settings.home, campaign_id, manifest), now).due
    groups: dict[str, int] = {}
    for chunk in due:
        for name, count in (chunk.groups or {OTHER: max(chunk.rows, 0)}).items():
            groups[name] = groups.get(name, 0) + count
    shaping = effective_shaping(settings, spec.transport)
    workers = min(processes or os.cpu_count() or 1, max(len(due), 1))
    compose = COMPOSE_SECONDS.get(settings.dkim.algorithm if settings.dkim.domain else "", COMPOSE_SECONDS["rsa-sha256"])
    return {"shaping": {k: v for k, v in shaping.as_dict().items() if k != "limits"} | {
                "limits": {name: {"rate": lim.rate, "connections": lim.connections} for name, lim in shaping.limits.items()}},
            "estimate": estimate_send(shaping, groups, workers, settings.send.rate, compose)}
