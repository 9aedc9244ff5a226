"""Studio preview benchmark: the digest template previewed for one subscriber through POST /preview, over real HTTP.

Issue 15: under 50 ms at p95. The baseline is the same studio's /healthz in the same run (the HTTP floor:
the client, uvicorn, the route table), so the ratio is what a preview costs over a request that does nothing.
The subscriber comes from a planned campaign's chunk file, as in use. `python -m bench.studio_bench`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import log, row
from tests.support.campaign import SPEC, write_chunk, write_plan
from tests.support.studio import add_user, csrf_of, logged_in, studio_running, studio_settings

N = int(os.environ.get("BENCH_STUDIO_N", "300"))
TARGET_MS = 50.0  # issue 15: p95 of one preview through the HTTP endpoint


def percentiles(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000


def timed(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = studio_settings(Path(tmp))
        paths = write_plan(settings.home, SPEC, [(["ann@example.com", "bob@example.com"], "A", None, False)])
        write_chunk(paths[0], ["ann@example.com", "bob@example.com"], names=["Ann", "Bob"])
        secret = add_user(settings.home, "vic", "viewer")
        with studio_running(settings) as (url, clock):
            client = logged_in(url, clock, "vic", secret)
            csrf = csrf_of(client.http.get("/"))
            form = {"csrf": csrf, "template": "digest.html.j2", "campaign": "news", "subscriber_id": "1",
                    "subject": "Your weekly digest, {{ subscriber.first_name }}", "format": "json"}

            def preview():
                answer = client.http.post("/preview", data=form)
                assert answer.status_code == 200 and "Good morning, Ann." in answer.json()["html"], answer.text[:300]

            def healthz():
                assert client.http.get("/healthz").status_code == 200

            for _ in range(10):  # warm: the template compiles once per process (render.py's cache)
                preview()
                healthz()
            log(f"studio: {N} previews of the digest template and {N} /healthz")
            base50, base95 = percentiles(timed(healthz, N))
            p50, p95 = percentiles(timed(preview, N))
            client.close()
    problem = f"p95 {p95:.1f} ms is over the {TARGET_MS:g} ms target" if p95 > TARGET_MS else None
    return [row("studio preview digest p50", p50, "ms", f"/healthz {base50:.2f} ms", p50 / base50),
            row("studio preview digest p95", p95, "ms", f"/healthz {base95:.2f} ms", p95 / base95, problem=problem,
                note=f"target under {TARGET_MS:g} ms")]


if __name__ == "__main__":
    for line in run():
        print(line)
