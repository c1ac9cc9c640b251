"""Frames for the viewer: a read-ahead thread over ``log.frames()``, restartable at any time.

The viewer never loads the whole log. A :class:`FrameSource` reads synced frames on a
background thread into a small bounded queue (so decoding the next sweep and running the
stages overlaps with drawing this one) and runs the pipeline's frame stages on each frame. A
seek throws the read-ahead away and restarts the stream at the new time: the log's index makes
``log.frames(policy, start=t)`` cheap, so seeking costs one short read, not a scan.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bagscope.pipeline.stage import FrameStage, NeedsSetup, RunContext

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bagscope.pipeline.config import SyncConfig
    from bagscope.pipeline.stage import Stage
    from bagscope.replay.frame import Frame
    from bagscope.replay.log import Log

__all__ = ["DEFAULT_READ_AHEAD", "FrameSource", "Played", "setup_stages"]

DEFAULT_READ_AHEAD = 4
# A seek starts reading this much before the asked time (at least the sync slop), so the first
# frame at or after it has its partners and a reference stamped a little before its log time.
_SEEK_LEAD_NS = 500_000_000
_PUT_POLL_S = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class Played:
    """One frame as the viewer gets it: the stages' outputs are in ``frame.outputs``;
    ``timings_ms`` is what each stage spent on it, ``errors`` the stages that raised."""

    frame: Frame
    timings_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


_END = object()


class _Reader:
    """One generation of the stream: a thread, its stop flag and its queue."""

    def __init__(self, source: FrameSource, start_ns: int | None) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=source.read_ahead)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=source._read, args=(self, start_ns), name="bagscope-playback", daemon=True
        )

    def put(self, item: object) -> bool:
        """Queue ``item``, waiting for room; False when told to stop meanwhile."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_PUT_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def halt(self) -> None:
        self.stop.set()
        while self.thread.is_alive():  # empty the queue so a blocked put sees the flag
            with contextlib.suppress(queue.Empty):
                self.queue.get_nowait()
            self.thread.join(timeout=_PUT_POLL_S)


class FrameSource:
    """Synced frames of ``log`` from a background thread, with ``seek`` and ``close``.

    ``sync`` says which topics make a frame (a pipeline's ``[sync]`` or
    :func:`bagscope.pipeline.session.auto_sync`); ``stages`` (already set up: see
    :func:`setup_stages`) run on every frame before it is queued. At most ``read_ahead`` frames
    wait in the queue. ``get``/``poll``/``seek``/``close`` may be called from any thread; the
    stream itself is only ever read by one thread at a time (a seek joins the old reader before
    starting the new one).
    """

    def __init__(
        self,
        log: Log,
        sync: SyncConfig,
        *,
        stages: Sequence[Stage] = (),
        end_ns: int | None = None,
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> None:
        if read_ahead < 1:
            msg = f"read_ahead must be at least 1, not {read_ahead}"
            raise ValueError(msg)
        self.log = log
        self.sync = sync
        self.stages = [(s.name, s) for s in stages if isinstance(s, FrameStage)]
        self.end_ns = end_ns
        self.read_ahead = read_ahead
        self._lock = threading.Lock()
        self._reader: _Reader | None = None
        self._ended = False
        self._closed = False

    # -- the reader thread -----------------------------------------------------------------
    def _read(self, reader: _Reader, start_ns: int | None) -> None:
        from bagscope.pipeline.session import sync_policy
        from bagscope.replay.framing import parse_stamp_source

        try:
            policy = sync_policy(self.log, self.sync)
            assert policy is not None  # a SyncConfig always makes one
            begin = None
            if start_ns is not None:
                lead = max(_SEEK_LEAD_NS, self.sync.slop_ns or 0)
                begin = max(start_ns - lead, self.log.info().start_ns)
            stream = self.log.frames(
                policy,
                start=begin,
                end=self.end_ns,
                stamp_source=parse_stamp_source(self.sync.stamp),
            )
            for frame in stream:
                if reader.stop.is_set():
                    return
                if start_ns is not None and frame.t_ns < start_ns:
                    continue  # read for its partners only: the seek asked for later
                if not reader.put(self._process(frame)):
                    return
        except Exception as err:  # handed to the consumer, who raises it where it can be seen
            reader.put(err)
            return
        reader.put(_END)

    def _process(self, frame: Frame) -> Played:
        timings: dict[str, float] = {}
        errors: dict[str, str] = {}
        for name, stage in self.stages:
            t0 = time.perf_counter_ns()
            try:
                out = stage.process(frame)
            except Exception as err:  # one broken stage must not stop the viewer
                errors[name] = f"{type(err).__name__}: {err}"
                continue
            finally:
                timings[name] = (time.perf_counter_ns() - t0) / 1e6
            if out is not None:
                frame.outputs[name] = out
        return Played(frame=frame, timings_ms=timings, errors=errors)

    # -- the consumer's side -----------------------------------------------------------------
    def start(self, t_ns: int | None = None) -> None:
        """(Re)start the stream at the first frame at or after ``t_ns`` (None: the log's
        start), dropping whatever was read ahead."""
        with self._lock:
            if self._closed:
                msg = "the frame source is closed"
                raise RuntimeError(msg)
            if self._reader is not None:
                self._reader.halt()
            self._reader = _Reader(self, t_ns)
            self._ended = False
            self._reader.thread.start()

    seek = start

    @property
    def ended(self) -> bool:
        """True once the stream has run out (until the next seek)."""
        return self._ended

    @property
    def thread(self) -> threading.Thread | None:
        """The current reader thread (for tests and diagnostics)."""
        reader = self._reader
        return reader.thread if reader is not None else None

    @property
    def queued(self) -> int:
        """Frames read ahead and waiting."""
        reader = self._reader
        return reader.queue.qsize() if reader is not None else 0

    def get(self, timeout: float | None = None) -> Played | None:
        """The next frame, waiting for it; None at the end of the stream. Raises
        :class:`TimeoutError` after ``timeout`` seconds, and what the reader raised."""
        with self._lock:
            reader = self._reader
        if reader is None:
            self.start()
            reader = self._reader
            assert reader is not None
        if self._ended:
            return None
        try:
            item = reader.queue.get(timeout=timeout)
        except queue.Empty:
            msg = f"no frame within {timeout} s"
            raise TimeoutError(msg) from None
        return self._take(item)

    def poll(self) -> Played | None:
        """The next frame if one is ready, else None (see :attr:`ended`)."""
        reader = self._reader
        if reader is None or self._ended:
            return None
        try:
            item = reader.queue.get_nowait()
        except queue.Empty:
            return None
        return self._take(item)

    def _take(self, item: object) -> Played | None:
        if item is _END:
            self._ended = True
            return None
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        assert isinstance(item, Played)
        return item

    def close(self) -> None:
        """Stop and join the reader thread; idempotent."""
        with self._lock:
            self._closed = True
            if self._reader is not None:
                self._reader.halt()
                self._reader = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def setup_stages(log: Log, stages: Sequence[Stage], *, sync: SyncConfig) -> None:
    """Call each stage's ``setup`` as a run would (a model loads its weights here)."""
    from bagscope.pipeline.session import sync_policy
    from bagscope.replay.framing import parse_stamp_source

    policy = sync_policy(log, sync)
    context = RunContext(
        log=log,
        info=log.info(),
        sync_topics=tuple(log.resolve_topic(t) for t in sync.topics),
        sync=policy,
        stamp_source=parse_stamp_source(sync.stamp),
    )
    for stage in stages:
        if isinstance(stage, NeedsSetup):
            stage.setup(context)
