"""The service's counters: each worker process publishes its own to a file, /metrics sums them in Prometheus text."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.track.events import EventLog

ROUTES = ("/o", "/c", "/r", "/u", "/v", "/p", "/s", "/webhooks", "/healthz", "/metrics")


def metrics_dir(home: Path) -> Path:
    return home / "track" / "metrics"


def route_of(path: str) -> str:
    """A request's route label: its first path segment when known, else "other" (no token ever becomes a label)."""
    first = "/" + path[1:].split("/", 1)[0]
    return first if first in ROUTES else "other"


class Metrics:
    """One process's counters; `publish()` writes them where every worker's /metrics reads them."""

    def __init__(self, home: Path, events: EventLog):
        self.events = events
        self.requests: Counter[tuple[str, int]] = Counter()
        self.webhook_refusals: Counter[tuple[str, str]] = Counter()  # (provider, cause): signatures not believed
        self.errors = 0  # unhandled exceptions and event writes that failed (answered 5xx)
        self.path = metrics_dir(home) / f"{os.getpid()}-{os.urandom(3).hex()}.json"

    def snapshot(self) -> dict:
        return {"pid": os.getpid(),
                "requests": [[route, status, n] for (route, status), n in self.requests.items()],
                "webhook_refusals": [[p, cause, n] for (p, cause), n in self.webhook_refusals.items()],
                "events": dict(self.events.counts), "errors": self.errors + self.events.errors,
                "log_lag_seconds": round(self.events.lag(), 3), "log_unsynced_events": self.events.unsynced}

    def publish(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.snapshot())
        atomic_write(self.path, lambda tmp: tmp.write_text(data))

    def withdraw(self) -> None:
        self.path.unlink(missing_ok=True)

    def render(self) -> str:
        """Prometheus text: this process's counters now, every other live worker's as last published."""
        snapshots = [self.snapshot()]
        for path in sorted(self.path.parent.glob("*.json")):
            if path == self.path:
                continue
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced, or gone
            if _alive(other.get("pid")):
                snapshots.append(other)
            else:
                path.unlink(missing_ok=True)  # a worker that died: its process is gone, and so are its counters
        return prometheus(snapshots)


def prometheus(snapshots: list[dict]) -> str:
    requests: Counter[tuple[str, int]] = Counter()
    events: Counter[str] = Counter()
    refusals: Counter[tuple[str, str]] = Counter()
    for snap in snapshots:
        for provider, cause, n in snap.get("webhook_refusals", ()):
            refusals[(provider, cause)] += n
        for route, status, n in snap["requests"]:
            requests[(route, status)] += n
        events.update(snap["events"])
    lines = ["# HELP mailflow_track_requests_total HTTP requests answered, by route and status.",
             "# TYPE mailflow_track_requests_total counter"]
    lines += [f'mailflow_track_requests_total{{route="{r}",status="{s}"}} {n}' for (r, s), n in sorted(requests.items())]
    lines += ["# HELP mailflow_track_events_total Events written to the event logs, by type.",
              "# TYPE mailflow_track_events_total counter"]
    lines += [f'mailflow_track_events_total{{type="{t}"}} {n}' for t, n in sorted(events.items())]
    lines += ["# HELP mailflow_track_webhook_refusals_total Provider webhook requests refused (signature, credentials, replay...).",
              "# TYPE mailflow_track_webhook_refusals_total counter"]
    lines += [f'mailflow_track_webhook_refusals_total{{provider="{p}",cause="{c}"}} {n}' for (p, c), n in sorted(refusals.items())]
    lines += ["# HELP mailflow_track_errors_total Requests that failed inside the service, and event log write or fsync failures.",
              "# TYPE mailflow_track_errors_total counter",
              f"mailflow_track_errors_total {sum(s['errors'] for s in snapshots)}",
              "# HELP mailflow_track_log_lag_seconds Age of the oldest written event not yet fsynced, worst worker.",
              "# TYPE mailflow_track_log_lag_seconds gauge",
              f"mailflow_track_log_lag_seconds {max(s['log_lag_seconds'] for s in snapshots)}",
              "# HELP mailflow_track_log_unsynced_events Events written but not yet fsynced, all workers.",
              "# TYPE mailflow_track_log_unsynced_events gauge",
              f"mailflow_track_log_unsynced_events {sum(s['log_unsynced_events'] for s in snapshots)}",
              "# HELP mailflow_track_workers Worker processes reporting.",
              "# TYPE mailflow_track_workers gauge",
              f"mailflow_track_workers {len({s['pid'] for s in snapshots})}"]
    return "\n".join(lines) + "\n"


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
