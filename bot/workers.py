"""Several worker processes serving one port: `python app.py --workers N`.

One process runs its turns on one core. With `--workers N` the parent process, which has imported the app
(most of the start-up), reserves the port and forks N workers. Each builds and serves the app itself — its own
event loop, database pool, job runner, and in the embedded default its own built-in sandbox — on the same
port with SO_REUSEPORT, so the kernel spreads new connections over the workers. The parent only supervises:

* SIGTERM, or SIGINT (Ctrl-C): every worker is told to stop (SIGTERM) and stops as a single process does —
  it stops accepting, lets the turns in flight finish, closes its database pool — while the parent waits
  (killing what is left after `STOP_TIMEOUT_SECONDS`), then exits 0.
* A worker that dies after it started serving is reported and replaced by a new one; a worker whose parent was
  killed outright (SIGKILL, nothing could tell it) stops within a second, as on SIGTERM.
* A worker that ends before it served (a start-up failure: the database, the key file, a setting) stops them
  all, and the parent exits with its exit code, as a single process would have.

Work that must happen once stays once across workers as across replicas: durable jobs are claimed under
database leases, and the start-up steps (migrations, the catalog, the demo data, the sandbox's tables) take
database locks (services/db.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from services.i18n import _

log = logging.getLogger("cspbot.workers")

# aiohttp gives the requests in flight up to 60 s when a worker stops; then the worker cleans up.
STOP_TIMEOUT_SECONDS = 75.0
ORPHAN_CHECK_SECONDS = 1.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_READY = b"R"

# What a worker runs (in the forked process): serve until told to stop; call `ready()` once listening.
WorkerMain = Callable[[int, Callable[[], None]], None]
# Says a worker's failure in its own words and gives the exit code; None: logged with its traceback, code 1.
ErrorReport = Callable[[BaseException], int | None]


@dataclass
class _Worker:
    index: int
    pid: int
    ready_fd: int | None  # the read end of the pipe the worker says "serving" on; None once read
    serving: bool = False


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, not listening: it keeps the port ours (port 0 picks a
    free one) and fails at once if another program holds it. The workers listen on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reservation = socket.socket(family, socket.SOCK_STREAM)
    try:
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind((host, port))
    except BaseException:
        reservation.close()
        raise
    return reservation


def serve_app(make_app: Callable[[], web.Application], host: str, port: int, ready: Callable[[], None]) -> None:
    """Serve `make_app()` on (host, port) with SO_REUSEPORT until SIGTERM or SIGINT, as `web.run_app` would."""

    parent = os.getppid()

    async def serve() -> None:
        runner = web.AppRunner(make_app())
        await runner.setup()  # the app's start-up: database, sandbox, services, job runner
        try:
            await web.TCPSite(runner, host, port, reuse_port=True).start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in _STOP_SIGNALS:
                loop.add_signal_handler(signum, stop.set)
            ready()
            while not stop.is_set():  # a parent killed outright (SIGKILL) cannot say stop: then stop alone
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), ORPHAN_CHECK_SECONDS)
                if os.getppid() != parent:
                    log.error("the parent process (pid %d) is gone: stopping", parent)
                    break
        finally:
            await runner.cleanup()

    asyncio.run(serve())


class WorkerSupervisor:
    """Forks `count` workers running `worker_main(index, ready)` and keeps them running (see the module)."""

    def __init__(
        self,
        count: int,
        worker_main: WorkerMain,
        *,
        describe: str = "",
        keep_out: tuple[int, ...] = (),
        on_error: ErrorReport | None = None,
        on_serving: Callable[[], None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("at least one worker")
        self._count = count
        self._worker_main = worker_main
        self._on_error = on_error
        self._on_serving = on_serving
        self._describe = describe
        self._keep_out = keep_out  # file descriptors the workers close (the port reservation)
        self._workers: dict[int, _Worker] = {}  # by pid
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = -1, -1
        self._stopping = False
        self._exit_code = 0
        self._deadline: float | None = None
        self._all_served = False  # every worker has served once (restarts do not say it again)

    def run(self) -> int:
        """Start the workers, supervise them until they have all stopped; the exit code for the parent."""
        gc.collect()
        gc.freeze()  # the imported modules: shared with the workers copy-on-write, never collected
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        handled = (*_STOP_SIGNALS, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, _ignore) for signum in handled}
        previous_wakeup = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        try:
            for index in range(self._count):
                self._start(index)
            self._supervise()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._selector.close()
            os.close(self._wake_read)
            os.close(self._wake_write)
        return self._exit_code

    # the parent ------------------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(ready_read)
            self._run_worker(index, ready_write)
        os.close(ready_write)
        self._workers[pid] = _Worker(index, pid, ready_read)
        self._selector.register(ready_read, selectors.EVENT_READ, pid)
        log.info("worker %d started (pid %d)", index, pid)

    def _supervise(self) -> None:
        while self._workers:
            timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            for key, _events in self._selector.select(timeout):
                if key.data is None:
                    self._on_signals(os.read(self._wake_read, 64))
                else:
                    self._on_ready(key.data)
            self._reap()
            if self._deadline is not None and time.monotonic() >= self._deadline:
                for worker in self._workers.values():
                    log.error("worker %d (pid %d) did not stop in time: killed", worker.index, worker.pid)
                    _signal(worker.pid, signal.SIGKILL)
                self._deadline = None

    def _on_signals(self, signums: bytes) -> None:
        if any(signum in _STOP_SIGNALS for signum in signums) and not self._stopping:
            log.info("stopping %d workers", len(self._workers))
            self._stop_all()

    def _on_ready(self, pid: int) -> None:
        worker = self._workers[pid]
        assert worker.ready_fd is not None
        said = os.read(worker.ready_fd, 1)
        self._selector.unregister(worker.ready_fd)
        os.close(worker.ready_fd)
        worker.ready_fd = None
        if said == _READY:
            worker.serving = True
            log.info("worker %d (pid %d) serving%s", worker.index, worker.pid, self._describe)
            if all(w.serving for w in self._workers.values()) and not self._stopping and not self._all_served:
                self._all_served = True
                log.info("%d workers serving%s", len(self._workers), self._describe)
                if self._on_serving is not None:
                    self._on_serving()

    def _reap(self) -> None:
        while self._workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            if worker.ready_fd is not None:
                self._selector.unregister(worker.ready_fd)
                os.close(worker.ready_fd)
            self._on_exit(worker, status)

    def _on_exit(self, worker: _Worker, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        ended = _("was killed by signal {value}", value=-code) if code < 0 else _("exited with code {code}", code=code)
        if self._stopping:
            log.info("worker %d (pid %d) stopped", worker.index, worker.pid)
        elif not worker.serving:
            log.error("worker %d (pid %d) %s before it served: stopping all", worker.index, worker.pid, ended)
            self._exit_code = code if code > 0 else 1
            self._stop_all()
        else:
            log.error("worker %d (pid %d) %s: starting another", worker.index, worker.pid, ended)
            self._start(worker.index)

    def _stop_all(self) -> None:
        self._stopping = True
        self._deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for worker in self._workers.values():
            _signal(worker.pid, signal.SIGTERM)

    # a worker ------------------------------------------------------------------------------------------

    def _run_worker(self, index: int, ready_write: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (*_STOP_SIGNALS, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            self._selector.close()
            for descriptor in (
                self._wake_read,
                self._wake_write,
                *self._keep_out,
                *(w.ready_fd for w in self._workers.values() if w.ready_fd is not None),
            ):
                os.close(descriptor)

            def ready() -> None:
                os.write(ready_write, _READY)

            self._worker_main(index, ready)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as error:
            said = self._on_error(error) if self._on_error is not None else None
            if said is None:
                log.exception("worker %d failed", index)
            else:
                code = said
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _ignore(signum: int, frame: object) -> None:
    """The signal is read from the wake-up pipe (signal.set_wakeup_fd); nothing to do here."""


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def serve_workers(
    make_app: Callable[[], web.Application],
    host: str,
    port: int,
    count: int,
    *,
    on_error: ErrorReport | None = None,
    on_serving: Callable[[int], None] | None = None,
) -> int:
    """Serve `make_app()` from `count` worker processes on one port (see the module); the exit code.
    `on_serving(port)` is called in the parent once every worker serves (port 0 picks a free port)."""
    reservation = reserve_port(host, port)
    try:
        bound = reservation.getsockname()[1]

        def worker_main(_index: int, ready: Callable[[], None]) -> None:
            serve_app(make_app, host, bound, ready)

        supervisor = WorkerSupervisor(
            count,
            worker_main,
            describe=_(" on http://{host}:{bound}", host=host, bound=bound),
            keep_out=(reservation.fileno(),),
            on_error=on_error,
            on_serving=None if on_serving is None else lambda: on_serving(bound),
        )
        return supervisor.run()
    finally:
        reservation.close()
