"""The `bentoml serve` process's side of the workers (docs/hardening.md): it says when one dies,
and gives each instance its own Prometheus folder.

BentoML 1.4 runs the workers as one circus watcher and names circus's hooks and environment
for it itself. Circus logs a worker's death only at debug level, and BentoML hands every
instance on a host the same `$BENTOML_HOME/prometheus_multiproc_dir`, which it empties at
start-up: a second instance (a canary, a test run, a benchmark) wiped the first one's counters
and then had both instances' workers counted in its /metrics.

`watcher_class(Watcher)` is the subclass of circus's Watcher that service.server.internals
puts in its place (in `bentoml serve`'s process only). It adds two circus hooks (before_reap,
after_reap), reaps a dead worker on SIGCHLD instead of at BentoML's 10 s check, respawns
workers in containers too, and points the watcher's PROMETHEUS_MULTIPROC_DIR at a fresh
folder of this instance, removed when it exits.
`bentoml serve` imports the service (and so this) before it builds the watcher.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import shutil
import signal
import tempfile
import threading
from typing import Any

logger = logging.getLogger("service")

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@functools.lru_cache(maxsize=1)
def instance_metrics_dir() -> str:
    """This instance's Prometheus multiprocess folder: new, and removed at exit."""
    path = tempfile.mkdtemp(prefix="mnist-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def describe_exit(exit_code: int | None) -> str:
    """'SIGKILL', 'exit code 3': what circus's exit code says."""
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        try:
            return signal.Signals(-exit_code).name
        except ValueError:
            return f"signal {-exit_code}"
    return f"exit code {exit_code}"


def _before_reap(watcher: Any, process_pid: int, **_: Any) -> bool:
    """Note the dying worker's number while circus still has it."""
    process = watcher.processes.get(process_pid)
    watcher.reaped_wids = getattr(watcher, "reaped_wids", {})
    watcher.reaped_wids[process_pid] = getattr(process, "wid", "?")
    return True


def _after_reap(watcher: Any, process_pid: int, exit_code: int | None = None, **_: Any) -> bool:
    """Log a worker's end (a warning unless the server is stopping), and drop its live
    gauges from the metrics (prometheus_client's mark_process_dead)."""
    wid = getattr(watcher, "reaped_wids", {}).pop(process_pid, "?")
    how = describe_exit(exit_code)
    if watcher.is_stopping() or watcher.is_stopped():
        logger.info("worker %s (pid %d) stopped: %s", wid, process_pid, how)
    else:
        then = "a new worker starts in its place" if watcher.respawn else "it is not replaced"
        logger.warning("worker %s (pid %d) died: %s; its requests in flight failed; %s", wid, process_pid, how, then)
    directory = (watcher.env or {}).get(METRICS_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_pid, directory)  # type: ignore[no-untyped-call]
    return True


def _reap_on_sigchld(arbiter: Any) -> None:
    """Reap and replace a dead worker as soon as it dies: BentoML runs circus's periodic check
    every 10 s, so a killed worker went unnoticed (and unreplaced) for up to 10 s."""
    from circus.exc import ConflictError

    if threading.current_thread() is not threading.main_thread():  # signal handlers: main only
        return

    def manage_now() -> None:
        with contextlib.suppress(ConflictError):  # the periodic check is running right now
            arbiter.manage_watchers()  # what the periodic check runs

    def on_sigchld(_signum: int, _frame: Any) -> None:
        if arbiter.loop is not None:
            arbiter.loop.add_callback_from_signal(manage_now)

    signal.signal(signal.SIGCHLD, on_sigchld)


def watcher_class(shipped: type) -> type:
    """circus's Watcher (`shipped`) made to report worker exits, keep this instance's metrics
    apart and replace dead workers."""

    class SupervisedWatcher(shipped):  # type: ignore[misc]
        """circus's Watcher with our reap hooks and this instance's metrics folder."""

        def __init__(
            self, *args: Any, hooks: dict[str, Any] | None = None, env: dict[str, str] | None = None, **kwargs: Any
        ) -> None:
            hooks = {"before_reap": (_before_reap, True), "after_reap": (_after_reap, True), **(hooks or {})}
            if env and METRICS_ENV in env:
                env = {**env, METRICS_ENV: instance_metrics_dir()}
            # BentoML turns respawning off in containers (BENTOML_CONTAINERIZED, set by its
            # image): a killed worker left the pod serving on fewer workers for good, its
            # probes still green. Replace it, as outside a container.
            kwargs["respawn"] = True
            super().__init__(*args, hooks=hooks, env=env, **kwargs)

        def initialize(self, evpub_socket: Any, sockets: Any, arbiter: Any) -> None:
            super().initialize(evpub_socket, sockets, arbiter)
            _reap_on_sigchld(arbiter)

    return SupervisedWatcher
