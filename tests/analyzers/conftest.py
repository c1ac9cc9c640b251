"""Fixtures of the message analyzers' tests (topic health, latency, timestamps, freeze,
contract): short simulated drives built once per session, and the real logs."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

if TYPE_CHECKING:
    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.stage import Event

MESSAGE_SEED = 21
# Delivery and clock faults on different topics, so one drive serves several tests.
DELIVERY_SPEC = ",".join(
    [
        "drop:/imu=0.05",
        "duplicate:/odom=0.1",
        "reorder:/tf=0.1",
        "outage:/camera/image/compressed=1s+0.5s",
        "delay:/camera/camera_info=40ms",
        "clock_offset:/lidar/points=-80ms",
    ]
)
# Stamp faults, and the camera repeating one image from 5 s for 3 s: a 9 s drive.
STAMP_SPEC = ",".join(
    [
        "jitter:/odom=5ms",
        "drift:/imu=2000ppm",
        "zero_stamps:/camera/camera_info=0.05",
        "freeze:/camera/image/compressed=5s+3s",
    ]
)
_DRIVES = {
    "urban": ("urban", 3, None),
    "highway": ("highway", 3, None),
    "parking": ("parking", 3, None),
    "delivery": ("urban", 3, DELIVERY_SPEC),
    "stamps": ("urban", 9, STAMP_SPEC),
}


def _build(out: Path, scenario: str, seconds: int, faults: str | None) -> Path:
    from bagscope.sim.simulate import simulate
    from tests.analyzers._drives import small_scenario

    spec = small_scenario(scenario, seconds=seconds, seed=MESSAGE_SEED)
    return simulate(out, scenario=spec, faults=faults, workers=0).log_path


@pytest.fixture(scope="session")
def message_drives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Simulated drives (mcap, with ``.truth.json``): clean ``urban``/``highway``/``parking``
    (3 s each), ``delivery`` (:data:`DELIVERY_SPEC`) and ``stamps`` (:data:`STAMP_SPEC`, 9 s)."""
    root = tmp_path_factory.mktemp("message_drives")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {
            key: pool.submit(_build, root / f"{key}.mcap", *job) for key, job in _DRIVES.items()
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.fixture
def real_log_paths(shared_data: Path) -> list[Path]:
    """Every real log in ../shared/data: the ROS1 bags and the ROS2 directories."""
    from tests.analyzers._drives import real_logs

    return real_logs(shared_data)


# -- hand-written logs --------------------------------------------------------------------------
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def imu_message(ts: Any, stamp_ns: int, value: float, *, seq: int = 0) -> Any:
    """A ``sensor_msgs/Imu`` whose angular velocity x is ``value`` (so bodies differ or not)."""
    from tests.logwriter import header

    vec = ts.types["geometry_msgs/msg/Vector3"]
    return ts.types["sensor_msgs/msg/Imu"](
        header=header(ts, stamp_ns, "imu", seq=seq),
        orientation=ts.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=np.zeros(9),
        angular_velocity=vec(x=value, y=0.0, z=0.0),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=vec(x=0.0, y=0.0, z=9.81),
        linear_acceleration_covariance=np.zeros(9),
    )


def write(path: Path, fmt: str, entries: list[tuple[str, str, int, Any]]) -> Path:
    """Write (topic, msgtype, log time, builder(typestore)) entries as ``fmt``."""
    from tests.logwriter import LogSpec, write_log

    spec = LogSpec()
    for topic, msgtype, log_ns, build in entries:
        spec.add(topic, msgtype, log_ns, build)
    name = "log.bag" if fmt == "bag" else f"log_{fmt}"
    return write_log(path / name, spec, fmt)


def run(path: Path, *stages: Any, **kwargs: Any) -> RunResult:
    """Run ``stages`` over the log at ``path`` the way every command does."""
    from bagscope import open_log
    from bagscope.pipeline.runner import run_stages

    with open_log(path) as log:
        result = run_stages(log, list(stages), **kwargs)
    assert result.errors == [], result.errors
    return result


def loud(events: list[Event]) -> list[str]:
    """The messages of warning and error events."""
    return [e.message for e in events if e.severity != "info"]


def truth(log: Path) -> dict[str, Any]:
    """The faults of a simulated drive's sidecar, by spec text."""
    doc = json.loads(log.with_name(f"{log.name}.truth.json").read_text())
    return {f["spec"]: f for f in doc["faults"]}
