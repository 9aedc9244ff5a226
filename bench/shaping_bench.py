"""Shaping bench (issue 14): a relay pool sends a Gmail/Outlook/Yahoo mix as fast as one domain.

The send bench's path (bench/send_bench.py: chunk files as plan writes them, a sender process with a
spawned worker per core, smtp-sink on loopback, DKIM RSA-2048, tracking on), run three times:
1. BENCH_SHAPING_N recipients all at one domain: the baseline;
2. the same campaign with a realistic provider mix (45% Gmail, 20% Outlook, 20% Yahoo, 15% others)
   through the same relay pool, whose default is no provider limits: the ratio should be ~1.0;
3. the mix again with the pool set to `shaping = "providers"` (what relay pools did before: Yahoo at
   20 msgs/s per process), on BENCH_SHAPING_PROVIDERS_N recipients so that it ends in seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench import row
from bench.send_bench import CONNECTIONS, DKIM_DOMAIN, DKIM_SELECTOR, campaign, log, plan_chunks, send_planned
from bench.send_naive import free_port, postfix_tool, rsa_key_pem, start_sink, stop

N = int(os.environ.get("BENCH_SHAPING_N", "20000"))
PROVIDERS_N = int(os.environ.get("BENCH_SHAPING_PROVIDERS_N", "2000"))
# Out of every 20 recipients: 9 Gmail, 4 Outlook, 4 Yahoo, 3 at other domains
MIX = ["gmail.com"] * 9 + ["outlook.com"] * 4 + ["yahoo.com"] * 4 + ["example.org", "example.net", "shop.example"]


def mixed(subscriber_id: int) -> str:
    return MIX[subscriber_id % len(MIX)]


def one_domain(subscriber_id: int) -> str:
    return "example.com"


def run() -> list[dict]:
    postfix_tool("smtp-sink")
    from mailflow.cli import prefect_env
    prefect_env.prepare()

    home = Path(tempfile.mkdtemp(prefix="mailflow-bench-shaping-"))
    port = free_port()
    sink = start_sink(port)
    os.environ.update({"MAILFLOW_TRACKING__SECRET": "bench", "MAILFLOW_DKIM__PRIVATE_KEY": rsa_key_pem(2048)})
    try:
        def overrides(shaping: str) -> dict:
            return {"home": str(home), "tracking": {"base_url": "https://t.example.com"},
                    "dkim": {"domain": DKIM_DOMAIN, "selector": DKIM_SELECTOR},
                    "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": CONNECTIONS,
                                                   "shaping": shaping}}}}

        rates, problems = {}, {}
        for label, n, domain_of, shaping in [("one domain", N, one_domain, "none"), ("provider mix", N, mixed, "none"),
                                             ("provider mix, providers shaping", PROVIDERS_N, mixed, "providers")]:
            spec = campaign(f"shaping-{label.replace(' ', '-').replace(',', '')}-{n}")
            plan_chunks(home, spec, n, 1000, domain_of)
            log(f"shaping: {label}, {n} recipients through a relay pool with shaping = {shaping!r}")
            figures, _, problems[label] = send_planned(home, overrides(shaping), spec, n)
            rates[label] = n / figures["seconds"]
        base = rates["one domain"]
        procs = f"{os.cpu_count() or 2} processes x {CONNECTIONS} conns"
        return [
            row(f"shaping: relay pool, {N} msgs to one domain ({procs})", base, "msgs/s", "-", 1.0, problems["one domain"]),
            row(f"shaping: relay pool, {N} msgs Gmail/Outlook/Yahoo mix, default (no provider limits)",
                rates["provider mix"], "msgs/s", "one domain", rates["provider mix"] / base, problems["provider mix"]),
            row(f"shaping: relay pool, {PROVIDERS_N} msgs mix, shaping = providers (the old default)",
                rates["provider mix, providers shaping"], "msgs/s", "one domain",
                rates["provider mix, providers shaping"] / base, problems["provider mix, providers shaping"]),
        ]
    finally:
        stop(sink)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
