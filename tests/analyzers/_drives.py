"""Simulated drives shared by the sync, TF, point cloud, image and stage timing tests.

Each drive is built once per test process, on first use, whichever module asks first (a
module-scoped fixture per test module would build the same drive five times). They are small:
16 beams, a 320x180 camera, a few seconds. Set ``BAGSCOPE_TEST_DRIVES`` to a folder to keep
them between runs.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope import open_log
from bagscope.pipeline.runner import run_stages
from bagscope.replay.sync import make_policy
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import START_NS, simulate

if TYPE_CHECKING:
    from bagscope.sim.config import Scenario

__all__ = [
    "CAMERA",
    "CLEAN_SECONDS",
    "DAMAGED_SPEC",
    "LIDAR",
    "SCENARIOS",
    "SHOWCASE_SPEC",
    "START_NS",
    "clean_drive",
    "damaged_drive",
    "draw_figures",
    "drive",
    "fault",
    "problems",
    "real_logs",
    "real_sync_topics",
    "run",
    "showcase_drive",
    "small_scenario",
    "times_by_stamp",
]

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
SCENARIOS = ("urban", "highway", "parking")
CLEAN_SECONDS = 3
SEED = 11

# The faults whose detection the analyzers promise, at the times the simulator's own examples
# use (hence 8 s): a lidar sector blocked from 4 s for 3 s, odometry and the odom -> base_link
# TF 6 m off from 6 s on, /tf silent from 1.2 s for 0.5 s, the camera repeating its 2 s image
# for 1 s and the lidar its 1 s sweep for 1 s, the camera silent from 3.5 s for 0.8 s (no camera
# image within 50 ms of the sweeps at 3.6 ... 4.2 s: 7 sweeps without a frame).
SHOWCASE_SPEC = ",".join(
    [
        "blocked_sector:/lidar/points=4s+3s@30:90",
        "pose_jump:/odom=6s+6m",
        "stale_tf:1.2s+0.5s",
        "freeze:/camera/image/compressed=2s+1s",
        "freeze:/lidar/points=1s+1s",
        "outage:/camera/image/compressed=3.5s+0.8s",
    ]
)
SHOWCASE_SECONDS = 8
# Payloads that disagree with their own sizes, on both sensors.
DAMAGED_SPEC = "corrupt:/lidar/points=0.3,corrupt:/camera/image/compressed=0.2"
DAMAGED_SECONDS = 3

_ROOT: list[Path] = []


def _root() -> Path:
    """A temporary folder, or ``$BAGSCOPE_TEST_DRIVES`` (kept between runs) when set."""
    if not _ROOT:
        keep = os.environ.get("BAGSCOPE_TEST_DRIVES")
        if keep:
            path = Path(keep)
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = Path(tempfile.mkdtemp(prefix="bagscope-analyzer-drives-"))
            atexit.register(shutil.rmtree, path, ignore_errors=True)
        _ROOT.append(path)
    return _ROOT[0]


def small_scenario(scenario: str, *, seconds: int, seed: int = SEED) -> Scenario:
    """The simulator's ``scenario``, small: 16 beams, a 320x180 camera, ``seconds`` long."""
    return make_scenario(
        scenario,
        seed=seed,
        duration_ns=seconds * 1_000_000_000,
        beams=16,
        camera_size=(320, 180),
    )


@cache
def drive(scenario: str, *, seconds: int, faults: str | None = None, seed: int = SEED) -> Path:
    """A simulated drive (mcap), built on first request and kept for the test process."""
    name = f"{scenario}_{seconds}s_{seed}_{zlib.crc32((faults or '').encode()):08x}.mcap"
    if (_root() / name).exists() and Path(f"{_root() / name}.truth.json").exists():
        return _root() / name
    spec = small_scenario(scenario, seconds=seconds, seed=seed)
    return simulate(_root() / name, scenario=spec, faults=faults).log_path


def clean_drive(scenario: str) -> Path:
    return drive(scenario, seconds=CLEAN_SECONDS)


def showcase_drive() -> Path:
    return drive("urban", seconds=SHOWCASE_SECONDS, faults=SHOWCASE_SPEC)


def damaged_drive() -> Path:
    return drive("urban", seconds=DAMAGED_SECONDS, faults=DAMAGED_SPEC)


def real_logs(shared_data: Path) -> list[Path]:
    """Every real log in ../shared/data: the ROS1 bags and the ROS2 directories."""
    ros1 = sorted((shared_data / "ros1").glob("*.bag"))
    ros2 = sorted(p for p in (shared_data / "ros2").iterdir() if p.is_dir())
    return [*ros1, *ros2]


# Pairs of one real log's sensors that a replay would sync (the others have one sensor or none).
REAL_SYNC = {
    "sick_lms1xx_rms_radar.bag": ("/cloud", "/sick_lms_1xx/scan"),
    "realsense_t265_fisheye.bag": ("/camera/fisheye1/image_raw", "/camera/fisheye2/image_raw"),
}


def real_sync_topics(path: Path) -> tuple[str, ...] | None:
    return REAL_SYNC.get(path.name)


def run(
    path: Path,
    stages: list[Any],
    *,
    topics: tuple[str, ...] | None = (LIDAR, CAMERA),
    policy: str = "nearest",
    slop_ns: int | None = 50_000_000,
    **kwargs: Any,
) -> Any:
    """``run_stages`` over ``path`` with ``topics`` synced (None: messages only)."""
    sync = None
    if topics is not None:
        sync = make_policy(policy, list(topics), slop_ns=slop_ns if policy != "exact" else None)
    with open_log(path) as log:
        return run_stages(log, stages, sync=sync, **kwargs)


def problems(result: Any) -> list[Any]:
    """The warning and error events of a stage result."""
    return [e for e in result.events if e.severity != "info"]


def draw_figures(result: Any) -> int:
    """Draw every figure of a stage result off screen (a broken ``draw`` fails the test)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    for spec in result.figures:
        figure = Figure(figsize=spec.size)
        spec.draw(figure)
        figure.canvas.draw()
    return len(result.figures)


def fault(path: Path, spec: str) -> dict[str, Any]:
    """The truth sidecar's record of one fault (by its spec string)."""
    truth = json.loads(Path(f"{path}.truth.json").read_text())
    return next(f for f in truth["faults"] if f["spec"] == spec)


def times_by_stamp(path: Path, topic: str) -> dict[int, int]:
    """Header stamp -> log time of every message of ``topic`` (read independently of any
    analyzer)."""
    with open_log(path) as log:
        return {m.header_stamp_ns: m.log_time_ns for m in log.messages(topics=[topic])}
