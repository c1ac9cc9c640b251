"""Fixtures for the model-stage tests: a simulated drive with ground truth, and frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="session")
def urban_drive_32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of the urban scenario, 32-beam lidar (detection quality needs the density), a
    320x180 camera, with ground truth on /ground_truth/objects."""
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    path = tmp_path_factory.mktemp("models_sim") / "urban32.mcap"
    scenario = make_scenario(
        "urban", seed=3, duration_ns=3_000_000_000, beams=32, camera_size=(320, 180)
    )
    simulate(path, scenario=scenario, workers=0)
    return path
