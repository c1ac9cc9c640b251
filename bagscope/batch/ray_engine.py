"""The Ray batch engine: the same tasks as the process pool, on a local Ray instance or a
cluster.

Ray is the well-kept way to spread Python work over machines, so ``--engine ray`` is what
takes a batch from one box to many without bagscope running its own scheduler. Ray is
imported only here, and only when this engine is asked for: it is a large optional
dependency and takes most of a second to import.

Without an address a Ray instance is started for this batch and stopped after it; it is
bound to the loopback interface, because a batch on one machine has no reason to open ports
to the network (Ray's own default is every interface). With an address the batch is one
more driver on someone else's cluster: it connects, submits, disconnects, and leaves the
cluster as it was. A process that is already connected to Ray (a notebook that called
``ray.init()``) keeps its connection; the engine uses it and leaves it open.

Tasks are handed to Ray no more than ``workers`` at a time and the rest wait here, so that
``workers`` also bounds what a shared cluster is asked for, and leaving on an exception has
nothing queued in Ray to chase. A task is not retried when its worker dies (Ray retries
three times by default): a log that kills its worker would do so again, and the batch
records it as failed and goes on, as the process pool does.

Arguments and results cross as plain pickles, not through Ray's serializer: Ray hands numpy
arrays out as read-only views of its object store, and a task (a shard merge, say) that
updates an array it was given would fail on Ray and not in the process pool.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from bagscope.batch import BatchError
from bagscope.batch.engine import Outcome, one_line

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType, TracebackType

__all__ = ["RayEngine", "check_ray"]

NEEDS_RAY = "--engine ray needs Ray: pip install 'bagscope[ray]'"

# Outcomes are small summaries (run directories are written by the workers themselves), so
# the object store only carries task arguments and results; Ray's default is 30% of RAM.
OBJECT_STORE_BYTES = 256 * 2**20
# A refused port answers at once; an address that drops packets is given this long.
PROBE_TIMEOUT_S = 5.0
# ray.init against a port that answers TCP but is not Ray retries for many minutes.
CONNECT_TIMEOUT_S = 30.0
# After a cancel, how long running tasks get to remove what they were writing.
CANCEL_GRACE_S = 3.0
GCS_DEFAULT_PORT = 6379
CLIENT_DEFAULT_PORT = 10001
_CLUSTER_FLAG = "ENABLE_RAY_CLUSTER"  # ray._private.ray_constants, from the variable below


def check_ray(address: str | None) -> None:
    """Fail in one line, before any work, when the Ray engine cannot run: Ray is not
    installed, or nothing answers at ``address``.

    Only a TCP connection is tried: it answers within :data:`PROBE_TIMEOUT_S`, where
    ``ray.init`` on an address with nothing behind it retries for well over five minutes.
    """
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BatchError(NEEDS_RAY) from None
    if address is None:
        return
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        msg = f"cannot reach the Ray cluster at {address}: {_why(exc, host)}"
        raise BatchError(msg) from None


def _host_port(address: str) -> tuple[str, int]:
    """``host:port``, ``ray://host:port`` (Ray Client) or a bare host (Ray's default port)."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    default = CLIENT_DEFAULT_PORT if scheme == "ray" else GCS_DEFAULT_PORT
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:6379
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    try:
        port = int(port_text) if port_text else default
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        msg = f"--address must be host:port or ray://host:port, not {address!r}"
        raise BatchError(msg)
    return host, port


def _why(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is Ray running there, on that port?)"
    return exc.strerror or one_line(exc)


@contextlib.contextmanager
def _loopback_only(ray_constants: ModuleType | None) -> Iterator[None]:
    """Make the Ray instance started in this block bind to 127.0.0.1 only.

    On Linux Ray replaces a loopback ``_node_ip_address`` with the machine's address and
    then listens on every interface; only its "local Ray" mode (the macOS and Windows
    default, switched by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``) keeps the node on
    127.0.0.1. Ray reads that variable once, at import, so the flag it was read into is set
    too. The processes Ray starts inherit the environment, so both are put back as soon as
    they are running. Usage statistics stay off unless the user asked for them: a CI box
    need not phone home.
    """
    names = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    flag = getattr(ray_constants, _CLUSTER_FLAG, None)
    if flag is not None:
        setattr(ray_constants, _CLUSTER_FLAG, False)
    try:
        yield
    finally:
        if flag is not None:
            setattr(ray_constants, _CLUSTER_FLAG, flag)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _call(fn: Callable[[Any], Any], payload: bytes) -> bytes:
    """A task as a Ray worker runs it: ``fn`` (sent by reference) on the unpickled argument."""
    return pickle.dumps(fn(pickle.loads(payload)), protocol=pickle.HIGHEST_PROTOCOL)


def _original(exc: BaseException) -> BaseException:
    """The exception the task raised, not Ray's wrapper of it, so that ``failures.jsonl``
    reads the same whichever engine ran the log; the wrapper's text (the remote traceback)
    becomes a note, shown with the exception's own traceback."""
    cause = getattr(exc, "cause", None)
    if not isinstance(cause, BaseException):
        return exc
    remote = str(exc).strip()
    if remote and remote != str(cause).strip():
        cause.add_note(f"raised in a Ray worker: {remote}")
    return cause


class RayEngine:
    """Tasks as Ray tasks of one CPU each: a local instance of ``workers`` CPUs, or the
    cluster at ``address`` with at most ``workers`` tasks in flight.

    Nothing starts until the first task: a batch with every log already done starts no
    Ray. On a cluster, every node needs bagscope installed and the logs and ``--out`` at
    the same paths (a shared filesystem): tasks name files, they do not carry them.
    """

    def __init__(self, workers: int, address: str | None = None) -> None:
        self._workers = max(1, workers)
        self._address = address
        self._ray: ModuleType | None = None
        self._owned = False  # ray.init was ours: ray.shutdown is too
        self._restore: dict[str, Any] = {}
        self._task: Any = None  # _call as a Ray remote function, made once connected
        self._queued: deque[tuple[int, Callable[[Any], Any], Any]] = deque()
        self._running: dict[Any, int] = {}  # ObjectRef -> ticket
        self._tickets = itertools.count()

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        ticket = next(self._tickets)
        self._queued.append((ticket, fn, arg))
        self._dispatch()
        return ticket

    def next_done(self) -> list[Outcome]:
        if not self._running and not self._queued:
            return []
        ray = self._connect()
        self._dispatch()
        refs = list(self._running)
        ray.wait(refs, num_returns=1)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # all that have ended
        outcomes = []
        for ref in ready:
            ticket = self._running.pop(ref)
            try:
                outcomes.append(Outcome(ticket, value=pickle.loads(ray.get(ref))))
            except ray.exceptions.RayTaskError as exc:
                outcomes.append(Outcome(ticket, error=_original(exc)))
            except Exception as exc:  # the worker died, its node went away, Ray failed
                outcomes.append(Outcome(ticket, error=exc))
        self._dispatch()
        return outcomes

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                while self._running or self._queued:  # as the pool does: submitted work runs
                    self.next_done()
            else:
                self._queued.clear()
                self._stop()
        finally:
            self._disconnect()

    # -- Ray ---------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Hand queued tasks to Ray while fewer than ``workers`` are in flight."""
        if not self._queued or len(self._running) >= self._workers:
            return
        self._connect()
        while self._queued and len(self._running) < self._workers:
            ticket, fn, arg = self._queued.popleft()
            payload = pickle.dumps(arg, protocol=pickle.HIGHEST_PROTOCOL)
            self._running[self._task.remote(fn, payload)] = ticket

    def _connect(self) -> ModuleType:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise BatchError(NEEDS_RAY) from None
        if ray.is_initialized():
            if self._address is not None:
                msg = f"this process is already connected to Ray; cannot connect to {self._address}"
                raise BatchError(msg)
        else:  # ours to open, and to close
            self._restore = {"environ": dict(os.environ)}
            if threading.current_thread() is threading.main_thread():
                self._restore["sigterm"] = signal.getsignal(signal.SIGTERM)  # ray.init sets one
            try:
                if self._address is None:
                    self._start(ray)
                else:
                    self._join(ray)
            except BaseException:
                self._put_back()
                raise
            self._owned = True
        # Not retried when the worker dies (see the module's docstring).
        self._task = ray.remote(_call).options(num_cpus=1, max_retries=0)
        self._ray = ray
        return ray

    def _start(self, ray: ModuleType) -> None:
        try:
            with _loopback_only(sys.modules.get("ray._private.ray_constants")):
                ray.init(
                    address="local",  # never a cluster named by RAY_ADDRESS
                    num_cpus=self._workers,
                    num_gpus=0,
                    object_store_memory=OBJECT_STORE_BYTES,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,  # workers' output stays in Ray's logs
                    logging_level=logging.ERROR,  # no banner, no token-auth notice
                )
        except Exception as exc:
            msg = f"cannot start a local Ray instance: {one_line(exc)}"
            raise BatchError(msg) from exc

    def _join(self, ray: ModuleType) -> None:
        """Connect to the cluster at ``address``, giving up after :data:`CONNECT_TIMEOUT_S`.

        ``ray.init`` blocks in C++ for as long as it retries, so it runs in a daemon thread
        that is abandoned when the time is up; the process is about to report the error
        and end.
        """
        address = self._address
        done: dict[str, BaseException] = {}

        def connect() -> None:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            except BaseException as exc:
                done["error"] = exc

        thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
        thread.start()
        thread.join(CONNECT_TIMEOUT_S)
        if thread.is_alive():
            msg = (
                f"cannot reach the Ray cluster at {address}: no answer from Ray within "
                f"{CONNECT_TIMEOUT_S:g} s (is that the cluster's address and port?)"
            )
            raise BatchError(msg)
        if "error" in done:
            error = done["error"]
            msg = f"cannot reach the Ray cluster at {address}: {one_line(error)}"
            if "RAY_AUTH_MODE" not in os.environ:  # recent Ray starts clusters with tokens
                msg += " (a cluster with token authentication needs RAY_AUTH_MODE=token)"
            raise BatchError(msg) from error

    def _stop(self) -> None:
        """Stop what is running: a cancel first, which raises KeyboardInterrupt in the task
        so that it removes the run directory it was writing, then a kill for what is still
        running after :data:`CANCEL_GRACE_S`."""
        refs, self._running = list(self._running), {}
        ray = self._ray
        if ray is None or not refs:
            return
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        left = refs
        with contextlib.suppress(Exception):
            _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in left:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def _disconnect(self) -> None:
        ray, self._ray = self._ray, None
        self._task = None
        if ray is None or not self._owned:
            return
        self._owned = False
        try:
            ray.shutdown()  # a local instance stops; a cluster only loses this driver
        finally:
            self._put_back()

    def _put_back(self) -> None:
        """Undo what ``ray.init`` changed in this process beyond the connection: its SIGTERM
        handler (``sys.exit``) and its environment variables (``RAY_AUTH_MODE``, which a
        later connection to another cluster would inherit; ``PYTHONBREAKPOINT``, which sends
        ``breakpoint()`` to Ray's debugger)."""
        restore, self._restore = self._restore, {}
        if "sigterm" in restore:
            signal.signal(signal.SIGTERM, restore["sigterm"])
        environ: dict[str, str] | None = restore.get("environ")
        if environ is not None:
            for name in set(os.environ) - set(environ):
                del os.environ[name]
            os.environ.update(environ)
