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
