"""Ctrl-C and SIGTERM while sending: the first stops taking recipients, the second exits at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable

LINE = "mailflow: interrupted — run the same command to resume"
EXIT_STATUS = 130  # 128 + SIGINT: what shells report for a command ended by Ctrl-C
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested = threading.Event()
_installed = False
_on_request: list[Callable[[], None]] = []
_on_exit: list[Callable[[], None]] = []
_said = threading.Lock()  # taken once, by whoever prints the line first


def install(grace: float) -> None:
    """In the command's process: from now on the first signal requests a stop, and `grace` seconds
    later (or at a second signal) the process exits whatever is still running."""
    global _installed
    if not _installed:
        _installed = True
        _quiet_resource_tracker()
        threading.excepthook = _thread_died
        threading.Thread(target=_watch, args=(grace,), name="mailflow-interrupt", daemon=True).start()
    rearm()


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (which the send workers share) with its leak warning
    off: after a hard exit it cleans up the task runner's semaphores, which is right, and need not
    print a warning under the one line."""
    from multiprocessing import resource_tracker

    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [before, "ignore::UserWarning:multiprocessing.resource_tracker"]))
    try:
        resource_tracker.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = before


_default_thread_hook = threading.excepthook


def _thread_died(args) -> None:
    """A thread's uncaught exception once a stop is requested: a task runner's thread whose worker was
    interrupted (seen as "Exception in thread …: _RemoteTraceback" at a second Ctrl-C) is the command
    winding down, not news; the one line says what happened. Before a stop, Python's default report."""
    if not _requested.is_set():
        _default_thread_hook(args)


def rearm() -> None:
    """Handle the signals again. Prefect's flow engine puts its own SIGTERM handler in place while
    a flow runs (it would crash the flow at once), so a sending flow calls this first."""
    if _installed and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _on_signal)


def requested() -> bool:
    return _requested.is_set()


def when_requested(callback: Callable[[], None]) -> None:
    """Run `callback` once a stop is requested (now, if it already is). It may run twice: make it idempotent."""
    _on_request.append(callback)
    if _requested.is_set():
        callback()


def at_hard_exit(callback: Callable[[], None]) -> None:
    """Run `callback` (quickly: no waiting) just before the process exits without unwinding."""
    _on_exit.append(callback)


def say() -> None:
    """Print the one line, once per process."""
    if _said.acquire(blocking=False):
        os.write(2, (LINE + "\n").encode())


def stop_on_signal() -> None:
    """In a send worker process (the task runner's initializer): a signal only stops taking
    recipients; the command decides when everyone exits."""
    threading.excepthook = _thread_died
    for signum in SIGNALS:
        signal.signal(signum, lambda *_: _requested.set())


def _on_signal(signum, frame) -> None:
    # Runs in the main thread between two bytecodes, wherever it was: take no lock, start no thread.
    if _requested.is_set():
        hard_exit()
    _requested.set()


def _watch(grace: float) -> None:
    _requested.wait()
    for callback in list(_on_request):
        try:
            callback()
        except Exception:  # noqa: BLE001 - e.g. a stop file that cannot be written; the flag still stops this process
            pass
    threading.Event().wait(grace)  # messages on the wire finish, their outcomes are logged
    hard_exit()


def hard_exit() -> None:
    """Exit now: the send workers are killed (a message they had on the wire stays `in_flight` in
    the ledger, in doubt, which a resumed send handles), and nothing else is waited for."""
    say()
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signal.SIGKILL)
        except OSError:
            pass
    for callback in list(_on_exit):
        try:
            callback()
        except Exception:  # noqa: BLE001 - exiting regardless
            pass
    os._exit(EXIT_STATUS)
