"""What a simulated drive looks like: sensors, their mounts and rates, and the scenario.

These records are the only thing the world/sensor side and the bag-writing side of the
simulator share, so they are plain frozen values that can be built, compared and printed from a
notebook. :func:`make_scenario` is the one place defaults are applied (their values sit in
:mod:`bagscope.sim.choices`, where ``--help`` can show them): the default camera is 480×270
because that is what keeps the default drive (64-beam lidar at 10 Hz, one camera at 30 Hz, JPEG
encoding included) faster than real time on a 2-core laptop: per simulated second that is ten
sweeps (~0.6 core-s) and thirty frames (~0.9 core-s at 480×270, ~1.35 at 640×360) plus writing
(~0.35 core-s); see ``bench/simulate.py``. Larger sizes stay available through ``camera_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from bagscope.replay.rotation import rpy_to_matrix
from bagscope.sim.choices import (
    ALLOWED_BEAMS,
    DEFAULT_BEAMS,
    DEFAULT_CAMERA_SIZE,
    DEFAULT_DURATION_NS,
    DEFAULT_SEED,
    SCENARIOS,
)
from bagscope.sim.errors import SimError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALLOWED_BEAMS",
    "CLASS_SIZES",
    "SCENARIOS",
    "CameraSpec",
    "LidarSpec",
    "Mount",
    "Scenario",
    "make_scenario",
]


# (length, width, height) in metres of typical real objects (KITTI/nuScenes-like averages), so
# a detector evaluated on simulated data sees plausible box shapes.
CLASS_SIZES: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "car": (4.5, 1.85, 1.5),
        "van": (5.1, 2.0, 2.1),
        "truck": (8.5, 2.5, 3.3),
        "bus": (12.0, 2.55, 3.2),
        "pedestrian": (0.55, 0.6, 1.75),
        "cyclist": (1.8, 0.6, 1.7),
        "motorcycle": (2.2, 0.8, 1.5),
    }
)


# Columns are the optical axes (x right, y down, z forward) written in a body frame (x forward,
# y left, z up), so body_from_optical @ p_optical = p_body.
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    """A sensor's pose in ``base_link``: the transform TF publishes as base_link -> sensor."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def to_matrix(self) -> np.ndarray:
        """4x4 that maps points in the sensor frame into ``base_link``."""
        m = np.eye(4)
        m[:3, :3] = rpy_to_matrix(self.roll, self.pitch, self.yaw)
        m[:3, 3] = (self.x, self.y, self.z)
        return m


@dataclass(frozen=True, slots=True, kw_only=True)
class LidarSpec:
    """A spinning multi-beam lidar (Velodyne/Ouster-like), one sweep per revolution.

    ``dropout_prob`` loses returns uniformly (dust, electronics); ``divergence_dropout`` scales
    an extra loss that grows with range and with grazing incidence, the way a diverging beam's
    returned energy falls off, so far and oblique surfaces come back sparser, as on a real car.
    The head spins clockwise seen from above (Velodyne), starting at ``cut_azimuth_deg``.
    """

    topic: str = "/lidar/points"
    frame_id: str = "lidar"
    beams: int = DEFAULT_BEAMS
    vfov_deg: tuple[float, float] = (-25.0, 15.0)
    # 1024 columns x 64 beams = 65,536 points per sweep, an Ouster OS-64's default mode; it also
    # keeps the default drive within two cores' budget (1800 columns cost ~40% more lidar time).
    azimuth_steps: int = 1024
    rate_hz: float = 10.0
    max_range_m: float = 120.0
    min_range_m: float = 0.5
    range_noise_m: float = 0.02
    dropout_prob: float = 0.01
    divergence_dropout: float = 0.3
    # Azimuth in the lidar frame (degrees, counter-clockwise from x) where each sweep starts, like
    # Velodyne's ``cut_angle``: behind the car by default, so the seam is where nobody looks.
    cut_azimuth_deg: float = 180.0
    mount: Mount = field(default_factory=lambda: Mount(x=0.0, z=1.8))

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSpec:
    """A pinhole camera with optional plumb_bob distortion, mounted on ``base_link``.

    ``mount`` is the camera *body* pose (x forward, y left, z up); the published frame
    ``frame_id`` is the ROS optical frame (z forward, x right, y down), see
    :meth:`optical_matrix`.
    """

    name: str = "front"
    topic_prefix: str = "/camera"
    frame_id: str = "camera_optical"
    width: int = DEFAULT_CAMERA_SIZE[0]
    height: int = DEFAULT_CAMERA_SIZE[1]
    rate_hz: float = 30.0
    hfov_deg: float = 90.0
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    compressed: bool = True
    jpeg_quality: int = 85
    # Cameras free-run rather than being triggered by the lidar: their exposures fall between
    # sweeps, which is what makes syncing them a real problem (and skew a real measurement).
    phase_ns: int = 7_000_000
    mount: Mount = field(default_factory=lambda: Mount(x=1.6, z=1.5))

    @property
    def image_topic(self) -> str:
        suffix = "image/compressed" if self.compressed else "image_raw"
        return f"{self.topic_prefix}/{suffix}"

    @property
    def info_topic(self) -> str:
        return f"{self.topic_prefix}/camera_info"

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    def optical_matrix(self) -> np.ndarray:
        """4x4 mapping points in the optical frame into ``base_link`` (base_link -> optical)."""
        m = self.mount.to_matrix()
        m[:3, :3] = m[:3, :3] @ _BODY_FROM_OPTICAL
        return m


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One drive: which world, how long, which sensors; with ``seed`` it fixes every byte."""

    name: str
    seed: int
    duration_ns: int
    lidar: LidarSpec
    cameras: tuple[CameraSpec, ...]
    imu_rate_hz: float = 100.0
    tf_rate_hz: float = 50.0
    odom_rate_hz: float = 50.0


def _extra_cameras(front: CameraSpec) -> tuple[CameraSpec, ...]:
    """Side-looking and rear cameras with the front camera's intrinsics and rate."""
    rigs = (
        ("left", Mount(x=1.0, y=0.9, z=1.5, yaw=math.pi / 2)),
        ("right", Mount(x=1.0, y=-0.9, z=1.5, yaw=-math.pi / 2)),
        ("rear", Mount(x=-1.0, z=1.5, yaw=math.pi)),
    )
    return tuple(
        replace(
            front,
            name=name,
            topic_prefix=f"/camera_{name}",
            frame_id=f"camera_{name}_optical",
            mount=mount,
        )
        for name, mount in rigs
    )


def make_scenario(
    name: str,
    *,
    seed: int = DEFAULT_SEED,
    duration_ns: int = DEFAULT_DURATION_NS,
    beams: int | None = None,
    camera_size: tuple[int, int] | None = None,
    camera_rate_hz: float | None = None,
    raw_images: bool = False,
    extra_cameras: bool = False,
) -> Scenario:
    """The scenario ``name`` with defaults a user can override one knob at a time."""
    if name not in SCENARIOS:
        msg = f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}"
        raise SimError(msg, parameter="scenario")
    if duration_ns <= 0:
        msg = f"duration must be positive, got {duration_ns} ns"
        raise SimError(msg, parameter="duration_ns")
    lidar = LidarSpec()
    if beams is not None:
        if beams not in ALLOWED_BEAMS:
            choices = ", ".join(str(b) for b in ALLOWED_BEAMS)
            msg = f"unsupported lidar beam count {beams}; choose one of {choices}"
            raise SimError(msg, parameter="beams")
        lidar = replace(lidar, beams=beams)
    camera = CameraSpec(compressed=not raw_images)
    if camera_size is not None:
        width, height = camera_size
        if width < 16 or height < 16 or width > 8192 or height > 8192:
            msg = f"camera size must be between 16 and 8192 pixels a side, got {width}x{height}"
            raise SimError(msg, parameter="camera_size")
        camera = replace(camera, width=int(width), height=int(height))
    if camera_rate_hz is not None:
        if not camera_rate_hz > 0:
            msg = f"camera rate must be positive, got {camera_rate_hz} Hz"
            raise SimError(msg, parameter="camera_rate_hz")
        camera = replace(camera, rate_hz=float(camera_rate_hz))
    cameras = (camera, *_extra_cameras(camera)) if extra_cameras else (camera,)
    return Scenario(name=name, seed=seed, duration_ns=duration_ns, lidar=lidar, cameras=cameras)
