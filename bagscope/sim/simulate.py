"""Run a simulated drive and write it as a real log plus its ``.truth.json`` sidecar.

The loop walks sensor *ticks* in time order (static TF once, then TF, odometry, IMU, lidar
sweeps with their ground truth, camera frames with their CameraInfo), asks the
:class:`~bagscope.sim.faults.FaultInjector` how each message reaches the log, and only then
builds payloads - so a frame a fault drops is never rendered. Sweeps and frames are rendered on
worker processes (:mod:`bagscope.sim.sensors`) a bounded number ahead, which is what lets the
default drive run faster than real time on two cores; this process serializes and writes in
order. Every random draw comes from a stream named by (seed, sensor, stamp), so the bytes do
not depend on the number of workers or their timing.

Faults that change what a payload shows are applied here, as the injector's
:class:`~bagscope.sim.faults.Delivery` says: a frozen message is built from an earlier true
stamp's sweep, frame or ego state (only its header is its own); a pose jump shifts the reported
odometry and odom -> base_link TF, never the world the sensors see; a blocked lidar sector
removes the sweep's points in it - the way the simulator represents every ray that returns
nothing - after the worker's ray cast, so the ground truth boxes stay those of the true sweep.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from heapq import merge
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.sim import camera as sim_camera
from bagscope.sim.choices import DEFAULT_DURATION_NS, DEFAULT_SCENARIO, DEFAULT_SEED
from bagscope.sim.config import Scenario, make_scenario
from bagscope.sim.faults import (
    LATENCY_NOISE_NS,
    Delivery,
    FaultInjector,
    parse_faults,
)
from bagscope.sim.messages import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    DETECTIONS,
    IMAGE,
    IMU,
    ODOMETRY,
    POINT_CLOUD,
    TF,
    MessageEncoder,
)
from bagscope.sim.sensors import SensorPool, Sensors
from bagscope.sim.truth import truth_json, truth_path
from bagscope.sim.world import build_world
from bagscope.sim.writer import LogWriter, check_output_path, format_for_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from concurrent.futures import Future

    from bagscope.sim.config import CameraSpec
    from bagscope.sim.sensors import SweepData
    from bagscope.sim.world import EgoState, World

__all__ = [
    "GROUND_TRUTH_TOPIC",
    "START_NS",
    "SimulationResult",
    "scenario_topics",
    "simulate",
]

# The drive's t = 0 as an absolute time (2023-11-14T22:13:20Z): realistic epoch stamps, and far
# enough from zero that a negative clock_offset fault never makes a stamp negative.
START_NS = 1_700_000_000_000_000_000
GROUND_TRUTH_TOPIC = "/ground_truth/objects"
TF_TOPIC, TF_STATIC_TOPIC, ODOM_TOPIC, IMU_TOPIC = "/tf", "/tf_static", "/odom", "/imu"
ODOM_FRAME, BASE_FRAME = "odom", "base_link"

_MAX_IN_FLIGHT = 12  # messages waiting on a worker: bounds memory, keeps the workers busy
_PROGRESS_STEP_NS = 100_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """What :func:`simulate` wrote and how fast."""

    log_path: Path
    truth_path: Path
    fmt: str
    message_counts: Mapping[str, int]
    bytes_written: int
    wall_s: float
    sim_s: float

    @property
    def realtime_factor(self) -> float:
        """Simulated seconds per wall-clock second (>= 1 is faster than real time)."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else float("inf")


def scenario_topics(scenario: Scenario) -> dict[str, str]:
    """Every topic the drive writes, with its message type (for fault checking and tests)."""
    topics = {
        TF_STATIC_TOPIC: TF,
        TF_TOPIC: TF,
        ODOM_TOPIC: ODOMETRY,
        IMU_TOPIC: IMU,
        scenario.lidar.topic: POINT_CLOUD,
        GROUND_TRUTH_TOPIC: DETECTIONS,
    }
    for cam in scenario.cameras:
        topics[cam.image_topic] = COMPRESSED_IMAGE if cam.compressed else IMAGE
        topics[cam.info_topic] = CAMERA_INFO
    return topics


def _rates(scenario: Scenario) -> dict[str, float]:
    rates = {
        TF_TOPIC: scenario.tf_rate_hz,
        ODOM_TOPIC: scenario.odom_rate_hz,
        IMU_TOPIC: scenario.imu_rate_hz,
        scenario.lidar.topic: scenario.lidar.rate_hz,
        GROUND_TRUTH_TOPIC: scenario.lidar.rate_hz,
    }
    for cam in scenario.cameras:
        rates[cam.image_topic] = rates[cam.info_topic] = cam.rate_hz
    return rates


def _ticks(
    sensor: str, rate_hz: float, *, duration_ns: int, order: int, phase_ns: int = 0
) -> Iterator[tuple[int, int, str]]:
    """(offset_ns, order, sensor) at ``rate_hz`` from ``phase_ns``: integer stamps, no drift."""
    k = 0
    while (offset := phase_ns + round(k * 1e9 / rate_hz)) < duration_ns:
        yield offset, order, sensor
        k += 1


class _Pending:
    """A payload whose sensor data a worker is still producing: ``finish`` turns it into bytes."""

    def __init__(self, future: Future[Any], finish: Callable[[Any], bytes]) -> None:
        self._future = future
        self._finish = finish
        self._bytes: bytes | None = None

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> bytes:
        if self._bytes is None:
            self._bytes = self._finish(self._future.result())
        return self._bytes


class _Drive:
    """The per-run state: world, encoder, caches, and one payload builder per topic."""

    def __init__(self, scenario: Scenario, *, encoder: MessageEncoder, workers: int) -> None:
        self.scenario = scenario
        self.world: World = build_world(scenario)
        self.encoder = encoder
        sensors = Sensors(scenario, world=self.world, start_ns=START_NS)
        self.pool = SensorPool(sensors, workers=workers)
        self.cameras = {cam.image_topic: i for i, cam in enumerate(scenario.cameras)}
        self.info_cameras = {cam.info_topic: cam for cam in scenario.cameras}
        self.intrinsics = {cam.name: sim_camera.intrinsics(cam) for cam in scenario.cameras}
        self.rates = _rates(scenario)
        self._sweeps: dict[int, Future[SweepData]] = {}
        # per frozen topic: (content stamp, its sweep or frame), rendered once per window
        self._frozen: dict[str, tuple[int, Future[Any]]] = {}
        self._headings: dict[int, np.ndarray] = {}

    def seq(self, delivery: Delivery) -> int:
        """ROS1 header ``seq``: the message's index on its topic."""
        rate = self.rates.get(delivery.topic)
        return 0 if rate is None else round((delivery.stamp_ns - START_NS) * rate / 1e9)

    def sweep(self, stamp_ns: int) -> Future[SweepData]:
        """The sweep starting at ``stamp_ns``; cloud and ground truth share one ray cast."""
        future = self._sweeps.get(stamp_ns)
        if future is None:
            future = self.pool.sweep(stamp_ns)
            self._sweeps[stamp_ns] = future
            for old in [s for s in self._sweeps if s < stamp_ns - 1_000_000_000]:
                del self._sweeps[old]  # only a reordered cloud can come back this late
        return future

    def frozen(self, delivery: Delivery, make: Callable[[int], Future[Any]]) -> Future[Any]:
        """The sweep or frame a frozen ``delivery`` repeats: made once, shared by the window."""
        assert delivery.content_ns is not None
        held = self._frozen.get(delivery.topic)
        if held is None or held[0] != delivery.content_ns:
            held = self._frozen[delivery.topic] = (delivery.content_ns, make(delivery.content_ns))
        return held[1]

    def jump_offset(self, at_ns: int, metres: float) -> np.ndarray:
        """A pose jump's step in odom: ``metres`` along the ego's true heading at ``at_ns``."""
        heading = self._headings.get(at_ns)
        if heading is None:
            heading = self.world.ego(at_ns - START_NS).pose[:3, 0].copy()
            self._headings[at_ns] = heading
        return metres * heading

    def _reported(self, pose: np.ndarray, delivery: Delivery) -> np.ndarray:
        """The ego pose as odometry reports it: the true one plus every jump so far."""
        if not delivery.pose_jumps:
            return pose
        pose = pose.copy()
        for at_ns, metres in delivery.pose_jumps:
            pose[:3, 3] += self.jump_offset(at_ns, metres)
        return pose

    def _ego(self, delivery: Delivery) -> EgoState:
        """The true ego state the message shows: at its own stamp, or the frozen one's."""
        content = delivery.stamp_ns if delivery.content_ns is None else delivery.content_ns
        return self.world.ego(content - START_NS)

    def build(self, delivery: Delivery) -> _Pending | bytes:
        """Serialized payload of ``delivery``, pending when it waits on a worker."""
        topic = delivery.topic
        if topic in (self.scenario.lidar.topic, GROUND_TRUTH_TOPIC):
            if delivery.content_ns is None:
                sweep = self.sweep(delivery.stamp_ns)
            else:
                sweep = self.frozen(delivery, self.sweep)
            if topic == GROUND_TRUTH_TOPIC:
                return _Pending(sweep, lambda d: self._ground_truth(delivery, d))
            return _Pending(sweep, lambda d: self._cloud(delivery, d))
        if topic in self.cameras:
            index = self.cameras[topic]
            if delivery.content_ns is None:
                frame = self.pool.frame(index, delivery.stamp_ns)
            else:
                frame = self.frozen(delivery, lambda stamp: self.pool.frame(index, stamp))
            return _Pending(frame, lambda px: self._image(delivery, index, px))
        if topic in self.info_cameras:
            return self._camera_info(delivery, self.info_cameras[topic])
        if topic == TF_TOPIC:
            return self._tf(delivery)
        if topic == ODOM_TOPIC:
            return self._odometry(delivery)
        if topic == IMU_TOPIC:
            return self._imu(delivery)
        if topic == TF_STATIC_TOPIC:
            return self._tf_static(delivery)
        msg = f"no builder for topic {topic}"
        raise AssertionError(msg)

    def _cloud(self, delivery: Delivery, data: SweepData) -> bytes:
        points = data.points
        if delivery.blocked_deg:
            points = _unblocked(points, delivery.blocked_deg)
        return self.encoder.packed_point_cloud(
            stamp_ns=delivery.header_stamp_ns,
            frame_id=self.scenario.lidar.frame_id,
            points=points,
            seq=self.seq(delivery),
            corrupt=delivery.corrupt,
        )

    def _ground_truth(self, delivery: Delivery, data: SweepData) -> bytes:
        """Actors hit by at least one lidar ray, as boxes in the lidar frame at sweep start."""
        return self.encoder.detections(
            data.boxes,
            stamp_ns=delivery.header_stamp_ns,
            frame_id=self.scenario.lidar.frame_id,
            seq=self.seq(delivery),
        )

    def _image(self, delivery: Delivery, index: int, pixels: bytes | np.ndarray) -> bytes:
        cam = self.scenario.cameras[index]
        if isinstance(pixels, bytes):
            return self.encoder.jpeg_image(
                stamp_ns=delivery.header_stamp_ns,
                frame_id=cam.frame_id,
                jpeg=pixels,
                seq=self.seq(delivery),
                corrupt=delivery.corrupt,
            )
        return self.encoder.raw_image(
            stamp_ns=delivery.header_stamp_ns,
            frame_id=cam.frame_id,
            rgb=pixels,
            seq=self.seq(delivery),
            corrupt=delivery.corrupt,
        )

    def _camera_info(self, delivery: Delivery, cam: CameraSpec) -> bytes:
        k, d = self.intrinsics[cam.name]
        return self.encoder.camera_info(
            stamp_ns=delivery.header_stamp_ns,
            frame_id=cam.frame_id,
            width=cam.width,
            height=cam.height,
            k=k,
            d=d,
            seq=self.seq(delivery),
        )

    def _tf(self, delivery: Delivery) -> bytes:
        pose = self._reported(self._ego(delivery).pose, delivery)
        return self.encoder.tf([(ODOM_FRAME, BASE_FRAME, pose)], stamp_ns=delivery.header_stamp_ns)

    def _tf_static(self, delivery: Delivery) -> bytes:
        lidar = self.scenario.lidar
        edges = [(BASE_FRAME, lidar.frame_id, lidar.mount.to_matrix())]
        edges += [(BASE_FRAME, cam.frame_id, cam.optical_matrix()) for cam in self.scenario.cameras]
        return self.encoder.tf(edges, stamp_ns=delivery.header_stamp_ns)

    def _odometry(self, delivery: Delivery) -> bytes:
        ego = self._ego(delivery)
        return self.encoder.odometry(
            stamp_ns=delivery.header_stamp_ns,
            pose=self._reported(ego.pose, delivery),
            linear_velocity=ego.linear_velocity,
            angular_velocity=ego.angular_velocity,
            frame_id=ODOM_FRAME,
            child_frame_id=BASE_FRAME,
            seq=self.seq(delivery),
        )

    def _imu(self, delivery: Delivery) -> bytes:
        ego = self._ego(delivery)
        return self.encoder.imu(
            stamp_ns=delivery.header_stamp_ns,
            pose=ego.pose,
            angular_velocity=ego.angular_velocity,
            linear_acceleration=ego.linear_acceleration,
            frame_id=BASE_FRAME,
            seq=self.seq(delivery),
        )


def _unblocked(points: np.ndarray, sectors: Iterable[tuple[float, float]]) -> np.ndarray:
    """``points`` without those whose azimuth (lidar frame, atan2(y, x) in degrees) lies in a
    closed sector (FROM in [0, 360), width) counterclockwise: a blocked ray returns nothing,
    and the simulator's clouds leave out every ray that returns nothing (they are dense).

    Rows are selected as raw bytes: indexing the structured array itself does not copy its pad
    bytes, which would then hold whatever memory held and make the log's bytes vary by run.
    """
    x = points["x"].astype(np.float64)
    y = points["y"].astype(np.float64)
    azimuth = np.degrees(np.arctan2(y, x)) % 360.0
    blocked = np.zeros(len(points), dtype=bool)
    for start, width in sectors:
        blocked |= (azimuth - start) % 360.0 <= width
    rows = np.ascontiguousarray(points).view(np.uint8).reshape(len(points), points.dtype.itemsize)
    return rows[~blocked].reshape(-1).view(points.dtype)


def _sensor_ticks(scenario: Scenario) -> Iterator[tuple[int, int, str]]:
    duration = scenario.duration_ns
    streams = [
        iter([(0, 0, TF_STATIC_TOPIC)]),
        _ticks(TF_TOPIC, scenario.tf_rate_hz, duration_ns=duration, order=1),
        _ticks(ODOM_TOPIC, scenario.odom_rate_hz, duration_ns=duration, order=2),
        _ticks(IMU_TOPIC, scenario.imu_rate_hz, duration_ns=duration, order=3),
        _ticks("lidar", scenario.lidar.rate_hz, duration_ns=duration, order=4),
    ]
    streams += [
        _ticks(f"camera:{i}", cam.rate_hz, duration_ns=duration, order=5 + i, phase_ns=cam.phase_ns)
        for i, cam in enumerate(scenario.cameras)
    ]
    return merge(*streams)


def _tick_topics(sensor: str, scenario: Scenario) -> tuple[str, ...]:
    if sensor == "lidar":
        return scenario.lidar.topic, GROUND_TRUTH_TOPIC
    if sensor.startswith("camera:"):
        cam = scenario.cameras[int(sensor.partition(":")[2])]
        return cam.info_topic, cam.image_topic
    return (sensor,)


def simulate(
    out: Path | str,
    *,
    fmt: str | None = None,
    scenario: str | Scenario = DEFAULT_SCENARIO,
    duration_ns: int = DEFAULT_DURATION_NS,
    seed: int = DEFAULT_SEED,
    faults: str | None = None,
    camera_size: tuple[int, int] | None = None,
    beams: int | None = None,
    raw_images: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
    compress: bool = False,
) -> SimulationResult:
    """Simulate ``scenario`` and write it to ``out`` with its ``.truth.json`` sidecar.

    ``fmt`` (``mcap``, ``db3`` or ``bag``) defaults to what ``out``'s name asks for, and the name
    decides between one file and a rosbag2 directory: see
    :func:`~bagscope.sim.writer.format_for_path`. A :class:`~bagscope.sim.config.Scenario`
    object is used as is (``duration_ns``, ``seed``, ``camera_size``, ``beams`` and
    ``raw_images`` then come from it). ``progress`` receives (simulated ns done, total ns).
    ``workers`` processes render sweeps and frames; ``workers=0`` renders them in the calling
    process (same bytes, slower). Errors name the argument at fault in
    :attr:`SimError.parameter <bagscope.sim.errors.SimError.parameter>`.
    """
    wall_start = time.perf_counter()
    out = Path(out)
    if fmt is None:
        fmt = format_for_path(out)
    if isinstance(scenario, str):
        scenario = make_scenario(
            scenario,
            seed=seed,
            duration_ns=duration_ns,
            beams=beams,
            camera_size=camera_size,
            raw_images=raw_images,
        )
    check_output_path(out, fmt=fmt, overwrite=overwrite)
    topics = scenario_topics(scenario)
    parsed = parse_faults(faults or "", topics=topics, duration_ns=scenario.duration_ns)
    injector = FaultInjector(
        parsed, seed=scenario.seed, start_ns=START_NS, end_ns=START_NS + scenario.duration_ns
    )
    encoder = MessageEncoder(ros1=fmt == "bag")
    # rosbags compiles a type's (de)serializers with exec() on first use, and CPython ends the
    # process by SIGINT, not exit 130, when Ctrl-C lands in exec()'d code however it is handled:
    # compiling them all now keeps an interrupted drive a clean exit.
    for msgtype in sorted(set(topics.values())):
        encoder.typestore.get_msgdef(msgtype)
    generated = dict.fromkeys(topics, 0)
    drive = _Drive(scenario, encoder=encoder, workers=workers)
    try:
        with LogWriter(
            out, fmt=fmt, typestore=encoder.typestore, overwrite=overwrite, compress=compress
        ) as writer:
            in_flight: deque[tuple[Delivery, str, _Pending | bytes]] = deque()

            def drain(limit: int) -> None:
                while in_flight and (
                    len(in_flight) > limit
                    or not isinstance(in_flight[0][2], _Pending)
                    or in_flight[0][2].done()
                ):
                    delivery, msgtype, payload = in_flight.popleft()
                    data = payload.result() if isinstance(payload, _Pending) else payload
                    writer.add(delivery.topic, msgtype, log_time_ns=delivery.log_ns, payload=data)

            def submit(deliveries: list[Delivery]) -> None:
                built: dict[tuple[str, int, int, bool], _Pending | bytes] = {}
                for delivery in deliveries:
                    key = (
                        delivery.topic,
                        delivery.stamp_ns,
                        delivery.header_stamp_ns,
                        delivery.corrupt,
                    )
                    if key not in built:  # a duplicate shares its original's payload
                        built[key] = drive.build(delivery)
                    in_flight.append((delivery, topics[delivery.topic], built[key]))

            next_progress = 0
            for offset, _, sensor in _sensor_ticks(scenario):
                stamp = START_NS + offset
                deliveries: list[Delivery] = []
                for topic in _tick_topics(sensor, scenario):
                    generated[topic] += 1
                    deliveries += injector.deliver(topic, stamp)
                submit(deliveries)
                drain(_MAX_IN_FLIGHT)
                # nothing generated from now on is logged before ``stamp``, nor is anything
                # still being built logged before its own (known) log time
                pending = min((d.log_ns for d, _, _ in in_flight), default=stamp)
                writer.advance(min(stamp, pending))
                if progress is not None and offset >= next_progress:
                    progress(offset, scenario.duration_ns)
                    next_progress = offset + _PROGRESS_STEP_NS
            submit(injector.flush(not_before_ns=START_NS + scenario.duration_ns))
            drain(0)
            drive.pool.close()  # before the commit, so nothing slow runs after the log is placed
            writer.flush()
            truth = _truth(
                out,
                fmt=fmt,
                scenario=scenario,
                drive=drive,
                injector=injector,
                generated=generated,
                written=writer.counts,
            )
            writer.add_sidecar(truth_path(out), truth)
    finally:
        drive.pool.close()
    if progress is not None:
        progress(scenario.duration_ns, scenario.duration_ns)
    wall_s = time.perf_counter() - wall_start
    return SimulationResult(
        log_path=out,
        truth_path=truth_path(out),
        fmt=fmt,
        message_counts=dict(writer.counts),
        bytes_written=writer.bytes_written,
        wall_s=wall_s,
        sim_s=scenario.duration_ns / 1e9,
    )


def _truth(
    out: Path,
    *,
    fmt: str,
    scenario: Scenario,
    drive: _Drive,
    injector: FaultInjector,
    generated: Mapping[str, int],
    written: Mapping[str, int],
) -> bytes:
    topics = scenario_topics(scenario)
    for record in injector.records:
        if record.fault.kind == "pose_jump":  # the step's direction is the drive's to know
            at_ns = START_NS + record.fault.start_ns
            offset = drive.jump_offset(at_ns, record.fault.distance_m)
            record.details["offset_m"] = [float(v) for v in offset]
            record.details["tf_topic"] = TF_TOPIC
    return truth_json(
        out,
        scenario=scenario,
        start_ns=START_NS,
        fmt=fmt,
        topics={
            topic: {
                "type": msgtype,
                "rate_hz": drive.rates.get(topic),
                "generated": generated[topic],
                "written": written.get(topic, 0),
                "latency_ns": injector.latency_ns(topic),
                "latency_noise_ns": LATENCY_NOISE_NS,
            }
            for topic, msgtype in topics.items()
        },
        faults=injector.records,
        ground_truth={
            "topic": GROUND_TRUTH_TOPIC,
            "frame_id": scenario.lidar.frame_id,
            "stamp": "lidar sweep start (the cloud's header stamp)",
            "visibility": "actors with at least one lidar return in the sweep",
            "class": "detections[i].results[0].hypothesis.class_id (score 1.0)",
            "track_id": "detections[i].id (decimal string, stable over the drive)",
            "box": "detections[i].bbox: center pose and size (length, width, height) in m",
        },
    )
