"""Flow glue: a send's chunks as flow runs of the `send-chunk` deployment, which the work pool's workers pick up."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture

from mailflow.errors import MailflowError, NeedsAttention
from mailflow.tasks.send.schedule import PlannedChunk
from mailflow.tasks.send.spread import chunk_counts, chunk_name

DEPLOYMENT = "send_chunk/send-chunk"  # flows/send_chunk.py, deployed from prefect.yaml
POLL_SECONDS = 2.0  # one API call per poll, for every chunk run still going
EVERY_CHUNK = 1 << 30  # the window over workers: all due chunks at once; the workers (and their --limit) pace them


@contextmanager
def chunk_sender(home: Path, campaign_id: str, config: str | None, overrides: dict | None, distribute: bool,
                 local: Callable[[PlannedChunk], PrefectFuture], local_window: int) -> Iterator[tuple[Callable, int]]:
    """(submit, window) for flows/progress.py's follow_chunks: each chunk a task of this flow run, or with
    `distribute` a flow run of the `send-chunk` deployment that a worker of the pool runs."""
    if not distribute:
        yield local, local_window
        return
    runs = ChunkRuns(home, campaign_id, config, overrides)
    try:
        yield runs.submit, EVERY_CHUNK
    finally:
        runs.close()


class ChunkRun:
    """A future for one chunk's flow run, as in_window() uses one: add_done_callback() and result()."""

    def __init__(self, run_id: UUID, run_name: str, chunk: str, counts: Callable[[], dict[str, int]]):
        self.run_id, self.run_name, self.chunk, self._counts = run_id, run_name, chunk, counts
        self.state: State | None = None
        self._callbacks: list[Callable] = []
        self._lock = threading.Lock()

    def add_done_callback(self, fn: Callable[[ChunkRun], object]) -> None:
        with self._lock:
            if self.state is None:
                self._callbacks.append(fn)
                return
        fn(self)

    def finish(self, state: State) -> None:
        with self._lock:
            self.state, callbacks = state, self._callbacks
            self._callbacks = []
        for fn in callbacks:
            fn(self)

    def result(self) -> dict[str, int]:
        """The chunk's counts from its ledger once its run completed; a run that failed, crashed or was
        cancelled raises with its state's message (a paused relay, a chunk missing from the plan, ...)."""
        if self.state is not None and self.state.is_completed():
            return self._counts()
        state = self.state.name if self.state else "unknown"
        reason = self.state.message if self.state and self.state.message else "no message"
        raise NeedsAttention(f"chunk {self.chunk} (flow run {self.run_name}) ended {state}: {reason}")


class ChunkRuns:
    """Submits one `send-chunk` flow run per chunk and finishes each ChunkRun when its run reaches a final state."""

    def __init__(self, home: Path, campaign_id: str, config: str | None, overrides: dict | None,
                 poll_seconds: float = POLL_SECONDS):
        self.home, self.campaign_id, self.config, self.overrides = home, campaign_id, config, overrides
        self.poll_seconds = poll_seconds
        self._watching: dict[UUID, ChunkRun] = {}
        self._lock, self._closed = threading.Lock(), threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, chunk: PlannedChunk) -> ChunkRun:
        name = chunk_name(self.home, self.campaign_id, chunk)
        parameters = {"campaign_id": self.campaign_id, "chunk": name, "config": self.config, "overrides": self.overrides}
        try:
            run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=0)  # returns once scheduled
        except ObjectNotFound:
            raise MailflowError(f"the Prefect server has no deployment {DEPLOYMENT!r}: deploy it from prefect.yaml "
                                "(`prefect deploy --name send-chunk`) and start workers on its pool") from None
        future = ChunkRun(run.id, run.name, name, lambda: chunk_counts(self.home, self.campaign_id, chunk))
        with self._lock:
            self._watching[run.id] = future
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="chunk-runs", daemon=True)
                self._thread.start()
        return future

    def _watch(self) -> None:
        with get_client(sync_client=True) as client:
            while not self._closed.wait(self.poll_seconds):
                with self._lock:
                    ids = list(self._watching)
                if not ids:
                    continue
                try:
                    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
                except Exception:  # noqa: BLE001 - the API away for a moment (a restart): the runs go on, ask again
                    continue
                for run in runs:
                    if run.state is not None and run.state.is_final():
                        with self._lock:
                            future = self._watching.pop(run.id)
                        future.finish(run.state)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
