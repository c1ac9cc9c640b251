"""Fixtures shared by every test folder: small camera + lidar logs in each format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.logwriter import camera_lidar_spec, write_log

FORMATS = ("mcap", "db3", "bag")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def camera_lidar_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One second of 10 Hz lidar + 30 Hz camera (+ CameraInfo, TF) per format."""
    root = tmp_path_factory.mktemp("camera_lidar")
    spec = camera_lidar_spec()
    return {
        fmt: write_log(root / ("drive.bag" if fmt == "bag" else f"drive_{fmt}"), spec, fmt)
        for fmt in FORMATS
    }


@pytest.fixture
def shared_data() -> Path:
    """The real recorded logs beside the project; skip when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def short_drives(root: Path, count: int) -> list[Path]:
    """``count`` 1 s urban drives (seeds 0..) and a file that is not a log, for batch tests:
    16 beams and a 160x90 camera keep each about a second to simulate and to run."""
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    found = []
    for seed in range(count):
        scenario = make_scenario(
            "urban", seed=seed, duration_ns=1_000_000_000, beams=16, camera_size=(160, 90)
        )
        found.append(simulate(root / f"drive{seed}.mcap", scenario=scenario, workers=0).log_path)
    corrupt = root / "corrupt.mcap"
    corrupt.write_bytes(b"\x00garbage, not a log" * 20)
    return [*found, corrupt]
