"""The expensive half of a drive — lidar sweeps and camera frames — on worker processes.

Rendering is numpy between Open3D calls, so it holds the GIL: threads do not help, processes
do. Each worker holds its own :class:`~bagscope.sim.world.World` (the world is a deterministic
function of the scenario, so every copy is the same) and turns a request "sensor S at stamp T"
into the bytes the log needs: packed points for a sweep, JPEG (or raw) pixels for a frame.
Every random draw comes from a stream named by (seed, sensor, stamp), never from the worker's
history, so the bytes do not depend on which worker ran what, nor in which order: the inline
pool (``workers=0``) writes byte-identical logs.

Workers are forked on Linux: a spawned worker would spend seconds importing Open3D, which on a
short drive is more than the drive itself. The fork happens before this process casts any ray
if the caller has not, and Open3D's TBB pool copes with being forked after use as well.

Ctrl-C in a terminal interrupts the whole process group. Workers ignore it: the parent owns the
interrupt and stops them itself (cancelling what is queued), whereas a worker killed by it
prints a traceback and leaves the pool broken, which can hang the parent's shutdown.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.sim import camera as sim_camera
from bagscope.sim import lidar as sim_lidar
from bagscope.sim.messages import BoxTruth, encode_jpeg, pack_points
from bagscope.sim.tracks import ACTOR_ID_BASE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bagscope.sim.config import Scenario
    from bagscope.sim.world import World

__all__ = ["SensorPool", "Sensors", "SweepData", "stream"]


def stream(seed: int, *parts: str) -> np.random.Generator:
    """The random stream named ``parts`` of drive ``seed``: independent of call order."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepData:
    """One sweep as the log needs it: :data:`~bagscope.sim.messages.POINT_DTYPE` points and
    the ground truth: every actor it hit, as a box in the lidar frame at the sweep's start."""

    points: np.ndarray
    boxes: tuple[BoxTruth, ...]


class Sensors:
    """Renders sweeps and frames of one scenario, addressed by absolute stamp."""

    def __init__(self, scenario: Scenario, *, world: World, start_ns: int) -> None:
        self.scenario = scenario
        self.world = world
        self.start_ns = start_ns

    def sweep(self, stamp_ns: int) -> SweepData:
        """The lidar sweep starting at ``stamp_ns``."""
        rng = stream(self.scenario.seed, "lidar", str(stamp_ns))
        data = sim_lidar.simulate_sweep(
            self.world, self.scenario.lidar, stamp_ns - self.start_ns, rng
        )
        ids = np.unique(data.object_id)
        t_ns = stamp_ns - self.start_ns
        spec = self.scenario.lidar
        lidar_from_odom = np.linalg.inv(self.world.ego(t_ns).pose @ spec.mount.to_matrix())
        boxes = tuple(
            BoxTruth(
                track_id=actor.track_id,
                cls=actor.cls,
                pose=lidar_from_odom @ actor.pose,
                size=(float(actor.size[0]), float(actor.size[1]), float(actor.size[2])),
            )
            for actor in self.world.actors(t_ns, only=ids[ids >= ACTOR_ID_BASE].tolist())
        )
        return SweepData(
            points=pack_points(xyz=data.xyz, intensity=data.intensity, ring=data.ring, t=data.t),
            boxes=boxes,
        )

    def frame(self, camera: int, stamp_ns: int) -> bytes | np.ndarray:
        """Camera ``camera``'s frame at ``stamp_ns``: JPEG bytes, or the RGB array if raw."""
        cam = self.scenario.cameras[camera]
        rng = stream(self.scenario.seed, "camera", cam.name, str(stamp_ns))
        image = sim_camera.render(self.world, cam, stamp_ns - self.start_ns, rng)
        if cam.compressed:
            return encode_jpeg(image.rgb, quality=cam.jpeg_quality)
        return image.rgb


# -- worker processes ----------------------------------------------------------------------

_WORKER: Sensors | None = None


def _init_worker(sensors: Sensors) -> None:
    global _WORKER  # noqa: PLW0603 - one Sensors per worker process, set once at start
    _WORKER = sensors
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held back by _sigint_held until now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _started() -> None:
    """The first job: submitting it is what starts the workers."""


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back from this thread while it starts workers.

    A child inherits the signal mask, so no worker can take the interrupt before its
    initializer has set it to be ignored; here the interrupt arrives as soon as this ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _sweep_job(stamp_ns: int) -> SweepData:
    assert _WORKER is not None
    return _WORKER.sweep(stamp_ns)


def _frame_job(camera: int, stamp_ns: int) -> bytes | np.ndarray:
    assert _WORKER is not None
    return _WORKER.frame(camera, stamp_ns)


def _context() -> Any:
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


class SensorPool:
    """Sweeps and frames as futures: on ``workers`` processes, or at once when 0."""

    def __init__(self, sensors: Sensors, *, workers: int) -> None:
        self._sensors = sensors
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False
        if workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=_context(),
                initializer=_init_worker,
                initargs=(sensors,),
            )
            try:
                with _sigint_held():
                    self._pool.submit(_started)
            except BaseException:
                self.close()
                raise

    def sweep(self, stamp_ns: int) -> Future[SweepData]:
        if self._pool is None:
            return _done(self._sensors.sweep, stamp_ns)
        return self._pool.submit(_sweep_job, stamp_ns)

    def frame(self, camera: int, stamp_ns: int) -> Future[bytes | np.ndarray]:
        if self._pool is None:
            return _done(self._sensors.frame, camera, stamp_ns)
        return self._pool.submit(_frame_job, camera, stamp_ns)

    def close(self) -> None:
        """Stop the workers; pending work is cancelled (a second call does nothing)."""
        if self._pool is not None and not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True, cancel_futures=True)


def _done(fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
    future: Future[Any] = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as err:  # re-raised by Future.result()
        future.set_exception(err)
    return future
