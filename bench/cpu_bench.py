"""CPU time per message of the send path, by stage: what a core spends, whatever else runs on the machine.

Wall-clock rates swing with other load on a shared machine; CPU time (time.process_time) does
not, so this is the figure to compare between commits. Two measurements over the bench's
digest campaign (tracking on, DKIM RSA-2048 unless BENCH_CPU_DKIM says ed25519 or both):

1. compose only: Composer.compose over BENCH_CPU_N recipients, with the time of each stage
   (tokens, render, MIME, DKIM and its body canonicalization) taken by wrapping those functions;
2. end to end in this one process: send_chunk (compose, ledger, pipelining client) against
   smtp-sink; what is not compose, ledger or wire_data is the client, asyncio and the chunk set-up.

`python -m bench.cpu_bench` prints the breakdown; `make bench` adds its rows to the table.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from bench import row
from bench.send_naive import CONNECTIONS, free_port, rsa_key_pem, start_sink, stop

N = int(os.environ.get("BENCH_CPU_N", "3000"))
DKIM = os.environ.get("BENCH_CPU_DKIM", "rsa-sha256")  # rsa-sha256 | ed25519-sha256 | both
CHUNK = 1000
GOAL = 3000.0  # msgs/s of 23 KB personalised, tracked, DKIM-signed mail on two cores (the send issue)


def ed25519_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def dkim_overrides(algorithm: str) -> dict:
    rsa, ed = {"selector": "bench", "private_key": rsa_key_pem(2048)}, {"private_key": ed25519_key_pem()}
    if algorithm == "ed25519-sha256":
        return {"domain": "example.com", "algorithm": algorithm, "selector": "bench-ed", **ed}
    if algorithm == "both":
        return {"domain": "example.com", "algorithm": algorithm, **rsa, "ed25519_selector": "bench-ed",
                "ed25519_private_key": ed["private_key"]}
    return {"domain": "example.com", "algorithm": algorithm, **rsa}


class Stages:
    """CPU seconds spent inside wrapped functions (nested ones count in their callers too)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._undo: list = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        clock, seconds = time.process_time, self.seconds
        seconds.setdefault(label, 0.0)

        def timed(*args, **kwargs):
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += clock() - start

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


@contextmanager
def campaign_home(n: int):
    """A temporary home with the digest campaign planned for n recipients, and its settings."""
    from bench.send_bench import campaign, plan_chunks
    from mailflow.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="mailflow-bench-cpu-"))
    port = free_port()
    sink = start_sink(port)
    try:
        dkim = dkim_overrides(DKIM)
        keys = {f"MAILFLOW_DKIM__{k.upper()}": dkim.pop(k) for k in ("private_key", "ed25519_private_key") if k in dkim}
        settings = load_settings(overrides={  # secrets come from the environment, never overrides
            "home": str(home), "dkim": dkim,
            "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": CONNECTIONS}}},
            "tracking": {"base_url": "https://t.example.com"}}, environ={"MAILFLOW_TRACKING__SECRET": "bench", **keys})
        spec = campaign(f"cpu-{n}")
        plan_chunks(home, spec, n, CHUNK)
        yield settings, spec, sorted((home / "campaigns" / spec.campaign_id / "chunks").glob("*.parquet"))
    finally:
        stop(sink)
        shutil.rmtree(home, ignore_errors=True)


def key_operation_ms(signer) -> float:
    """CPU ms of the private-key operations alone, per message (one per key), on a typical header blob."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    blob, rounds, total = b"x" * 420, 500, 0.0
    for key in getattr(signer, "keys", [signer.key]):
        sign = (lambda k=key.private_key: k.sign(blob, padding.PKCS1v15(), hashes.SHA256())) \
            if key.algorithm == "rsa-sha256" else (lambda k=key.private_key: k.sign(blob[:32]))
        start = time.process_time()
        for _ in range(rounds):
            sign()
        total += (time.process_time() - start) / rounds
    return total * 1e3


# (module, class or None, function, label): wrapped where present, so older code measures too
STAGES = [
    ("mailflow.tasks.compose.compose", "Composer", "compose", "all, with the stage timers on"),
    ("mailflow.tasks.compose.tokens", "TokenSigner", "sign", "tokens (5 a recipient)"),
    ("mailflow.tasks.compose.tokens", "TokenSigner", "sign_link", "templated-link signatures (in render)"),
    ("mailflow.tasks.compose.render", "CampaignTemplates", "render", "render: subject, HTML, text"),
    ("mailflow.tasks.compose.mime", "Multipart", "write", "MIME parts"),
    ("mailflow.tasks.compose.compose", None, "build_mime", "MIME parts"),
    ("mailflow.tasks.compose.dkim", "DkimSigner", "signatures", "DKIM"),
    ("mailflow.tasks.compose.dkim", "DkimSigner", "sign", "DKIM"),
    ("mailflow.tasks.compose.dkim", None, "relaxed_body", "DKIM relaxed body canonicalization"),
]


def compose_stages(settings, spec, chunks) -> dict[str, float]:
    import importlib

    from mailflow.tasks.send.chunk import composer_for

    rows = [r for path in chunks for r in pl.read_parquet(path).to_dicts()]
    composer = composer_for(settings, spec)
    for r in rows[:100]:  # warm caches as a running send has them
        composer.compose(r)
    start = time.process_time()
    for r in rows:
        composer.compose(r)
    total = time.process_time() - start
    stages = Stages()
    for module, owner, name, label in STAGES:
        target = importlib.import_module(module)
        target = getattr(target, owner, None) if owner else target
        if target is not None and hasattr(target, name) and label not in stages.seconds:
            stages.wrap(target, name, label)
    try:
        for r in rows:
            composer.compose(r)
    finally:
        stages.restore()
    out = {"all": total}
    out.update(stages.seconds)
    out = {k: v / len(rows) * 1e3 for k, v in out.items()}
    out["DKIM private-key operations (measured apart)"] = key_operation_ms(composer.dkim)
    return out


def end_to_end(settings, spec, chunks) -> tuple[dict[str, float], int]:
    import mailflow.tasks.deliver.client
    import mailflow.tasks.files.ledger
    from mailflow.tasks.compose.compose import Composer
    from mailflow.tasks.send.chunk import send_chunk

    stages = Stages()
    stages.wrap(Composer, "compose", "compose")
    stages.wrap(mailflow.tasks.files.ledger.LedgerWriter, "append", "ledger (2 records a recipient)")
    stages.wrap(mailflow.tasks.deliver.client, "wire_data", "wire_data (SIZE, dot-stuffing)")
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.process_time()
    delivered = 0
    try:
        for chunk in chunks:
            delivered += asyncio.run(send_chunk(settings, spec, chunk)).get("delivered", 0)
    finally:
        stages.restore()
    total = time.process_time() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = sum(pl.scan_parquet(c).select(pl.len()).collect().item() for c in chunks)
    out = {"total, one sending process": total, "of which user": after.ru_utime - before.ru_utime,
           "of which system (kernel: sockets, files)": after.ru_stime - before.ru_stime}
    out.update(stages.seconds)
    out["client, asyncio, queues, chunk set-up (the rest)"] = total - sum(stages.seconds.values())
    return {k: v / n * 1e3 for k, v in out.items()}, delivered


def measure(n: int = N) -> tuple[dict[str, float], dict[str, float], int]:
    from mailflow.cli import prefect_env
    prefect_env.prepare()
    import mailflow.tasks.compose.dkim
    import mailflow.tasks.send.chunk

    # Until tasks/send/chunk.py builds its signer with signer_for, which knows dkim.algorithm
    original = mailflow.tasks.send.chunk.dkim_signer
    if hasattr(mailflow.tasks.compose.dkim, "signer_for"):
        mailflow.tasks.send.chunk.dkim_signer = lambda settings: mailflow.tasks.compose.dkim.signer_for(settings.dkim)
    try:
        with campaign_home(n) as (settings, spec, chunks):
            compose = compose_stages(settings, spec, chunks)
            e2e, delivered = end_to_end(settings, spec, chunks)
    finally:
        mailflow.tasks.send.chunk.dkim_signer = original
    return compose, e2e, delivered


def run() -> list[dict]:
    log(f"cpu: {N} recipients, DKIM {DKIM}: compose stages, then send_chunk in one process")
    compose, e2e, delivered = measure()
    problem = None if delivered == N else f"cpu bench: smtp-sink accepted {delivered} of {N}"
    rows = [row(f"cpu: compose, {label}", ms, "ms/msg") for label, ms in compose.items()]
    rows += [row(f"cpu: send_chunk end to end, {label}", ms, "ms/msg", problem=problem) for label, ms in e2e.items()]
    # What the CPU cost allows on this machine's cores if they did nothing else (the relay needs some too)
    ceiling = (os.cpu_count() or 1) * 1e3 / e2e["total, one sending process"]
    rows.append(row(f"cpu: ceiling, {os.cpu_count()} cores / CPU per message", ceiling, "msgs/s", f"goal {GOAL:.0f}",
                    ceiling / GOAL, problem))
    return rows


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    compose, e2e, delivered = measure()
    print(f"DKIM {DKIM}, {N} recipients of the digest template (tracking on); CPU ms per message")
    for title, figures in (("compose", compose), ("send_chunk end to end", e2e)):
        print(title)
        for label, ms in figures.items():
            print(f"  {label:52s} {ms:7.3f}")
    print(f"delivered {delivered} of {N}")
