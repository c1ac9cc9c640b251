"""The ``.truth.json`` sidecar: what the simulator did, for tests and analyzers to check against.

A log alone cannot say whether a gap is a fault or a bug in the reader; the sidecar can. It sits
next to the log (``drive.mcap`` -> ``drive.mcap.truth.json``, db3 directory ``drive/`` ->
``drive.truth.json``) and lists the scenario, every sensor with its rate, resolution and
extrinsics, each topic's transport latency, and every injected fault with its window, count and
the true stamps of the messages it touched. Every fault also says when it was in effect, as
absolute ``start_ns`` / ``end_ns`` (see :meth:`~bagscope.sim.faults.FaultRecord.extent_ns`),
so a scorer can match detections to any kind the same way. :func:`truth_json` only encodes it:
the simulator hands the bytes to :meth:`~bagscope.sim.writer.LogWriter.add_sidecar`, which
places them together with the log, so an interrupted run leaves neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np

    from bagscope.sim.config import Mount, Scenario
    from bagscope.sim.faults import FaultRecord

__all__ = ["TRUTH_VERSION", "read_truth", "scenario_json", "truth_json", "truth_path"]

TRUTH_VERSION = 1


def truth_path(log: Path) -> Path:
    """The sidecar's path for ``log`` (a file or a rosbag2 directory)."""
    log = Path(log)
    return log.with_name(f"{log.name}.truth.json")


def _matrix(m: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in m]


def _mount(mount: Mount) -> dict[str, float]:
    return {k: float(getattr(mount, k)) for k in ("x", "y", "z", "roll", "pitch", "yaw")}


def scenario_json(scenario: Scenario, *, start_ns: int) -> dict[str, Any]:
    """The scenario and its sensors; extrinsics as base_link -> sensor 4x4 matrices."""
    lidar = scenario.lidar
    cameras = []
    for cam in scenario.cameras:
        cameras.append(
            {
                "name": cam.name,
                "image_topic": cam.image_topic,
                "info_topic": cam.info_topic,
                "frame_id": cam.frame_id,
                "width": cam.width,
                "height": cam.height,
                "rate_hz": cam.rate_hz,
                "phase_ns": cam.phase_ns,
                "hfov_deg": cam.hfov_deg,
                "distortion": list(cam.distortion),
                "compressed": cam.compressed,
                "jpeg_quality": cam.jpeg_quality,
                "mount": _mount(cam.mount),
                "base_link_from_sensor": _matrix(cam.optical_matrix()),
            }
        )
    return {
        "name": scenario.name,
        "seed": scenario.seed,
        "start_ns": start_ns,
        "duration_ns": scenario.duration_ns,
        "imu_rate_hz": scenario.imu_rate_hz,
        "tf_rate_hz": scenario.tf_rate_hz,
        "odom_rate_hz": scenario.odom_rate_hz,
        "lidar": {
            "topic": lidar.topic,
            "frame_id": lidar.frame_id,
            "beams": lidar.beams,
            "vfov_deg": list(lidar.vfov_deg),
            "azimuth_steps": lidar.azimuth_steps,
            "rate_hz": lidar.rate_hz,
            "max_range_m": lidar.max_range_m,
            "mount": _mount(lidar.mount),
            "base_link_from_sensor": _matrix(lidar.mount.to_matrix()),
        },
        "cameras": cameras,
    }


def truth_json(
    log: Path,
    *,
    scenario: Scenario,
    start_ns: int,
    fmt: str,
    topics: Mapping[str, Mapping[str, Any]],
    faults: Iterable[FaultRecord],
    ground_truth: Mapping[str, Any],
) -> bytes:
    """The sidecar of ``log`` as the bytes of its file (indented JSON, one trailing newline)."""
    document = {
        "version": TRUTH_VERSION,
        "log": Path(log).name,
        "format": fmt,
        "scenario": scenario_json(scenario, start_ns=start_ns),
        "ground_truth": dict(ground_truth),
        "topics": {name: dict(info) for name, info in topics.items()},
        "faults": [record.to_json() for record in faults],
    }
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


def read_truth(log: Path) -> dict[str, Any]:
    """The sidecar of ``log`` as a dict (for tests and analyzers)."""
    with truth_path(log).open(encoding="utf-8") as stream:
        data: dict[str, Any] = json.load(stream)
    return data
