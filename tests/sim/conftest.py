"""Short simulated drives, built once per test session and shared by every test folder's tests.

``sim_logs[fmt]`` (fmt in ``mcap``, ``db3``, ``bag``) is a clean 2 s urban drive (16 beams,
320x180 camera, seed 7); ``sim_logs["faulty_mcap"]`` is the same drive with every fault kind
injected (see :data:`FAULTY_SPEC`). Each log has its ``.truth.json`` sidecar beside it.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate

if TYPE_CHECKING:
    from bagscope.sim.config import Scenario

SIM_SEED = 7
SIM_DURATION_NS = 2_000_000_000
FAULTY_SPEC = ",".join(
    [
        "drop:/imu=0.2",
        "outage:/camera/image/compressed=0.5s+0.4s",
        "delay:/camera/camera_info=40ms",
        "jitter:/odom=5ms",
        "clock_offset:/lidar/points=-80ms",
        "duplicate:/imu=0.1",
        "reorder:/tf=0.1",
        "stale_tf:1.2s+0.5s",
        "corrupt:/lidar/points=0.3",
        "corrupt:/camera/image/compressed=0.2",
    ]
)
LOG_NAMES = {"mcap": "drive.mcap", "db3": "drive_db3", "bag": "drive.bag"}


def small_scenario() -> Scenario:
    """The test drive: small enough that all four logs build in a few seconds."""
    return make_scenario(
        "urban", seed=SIM_SEED, duration_ns=SIM_DURATION_NS, beams=16, camera_size=(320, 180)
    )


@pytest.fixture(scope="session")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths of the simulated logs, keyed ``mcap``, ``db3``, ``bag`` and ``faulty_mcap``."""
    root = tmp_path_factory.mktemp("sim_logs")
    jobs: dict[str, tuple[Path, str, str | None]] = {
        fmt: (root / name, fmt, None) for fmt, name in LOG_NAMES.items()
    }
    jobs["faulty_mcap"] = (root / "faulty.mcap", "mcap", FAULTY_SPEC)
    # rendering is mostly GIL-bound numpy: two processes build the logs twice as fast
    context = multiprocessing.get_context("spawn")  # no fork under Open3D's thread pools
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {key: pool.submit(_build, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def _build(out: Path, fmt: str, faults: str | None) -> Path:
    return simulate(out, fmt=fmt, scenario=small_scenario(), faults=faults).log_path
