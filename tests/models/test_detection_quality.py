"""Acceptance: the built-in lidar detector, run by ``replay analyze --detect`` on simulated
urban, highway and parking drives, scored against their ground truth - real clustering, real
numbers, held here as floors a little under what it measures (see the closing note of the
issue for the figures)."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bagscope.cli import app

runner = CliRunner()
_SHOWN = {
    f"{who}|{crit}|{rng}"
    for who in ("all", "car", "pedestrian")
    for crit in ("iou0.5", "iou0.7", "dist2")
    for rng in ("all", "0-20m", "20-40m", "40-60m")
} | {f"{crit}|{rng}" for crit in ("iou0.5", "dist_mean") for rng in ("all", "0-20m", "20-40m")}
TRUTH = "/ground_truth/objects"
# (scenario) -> floors at BEV IoU 0.5 within 20 m: precision, recall, mAP
FLOORS = {
    "urban": (0.25, 0.40, 0.15),
    "highway": (0.10, 0.15, 0.10),
    "parking": (0.20, 0.18, 0.15),
}


def _simulate(out: Path, scenario: str) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    config = make_scenario(
        scenario, seed=3, duration_ns=3_000_000_000, beams=32, camera_size=(320, 180)
    )
    return simulate(out, scenario=config, workers=0).log_path


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """Per scenario: the detection metrics (label -> value) of `replay analyze --detect`."""
    root = tmp_path_factory.mktemp("detect")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        logs = dict(
            zip(
                FLOORS,
                pool.map(_simulate, [root / f"{s}.mcap" for s in FLOORS], FLOORS),
                strict=True,
            )
        )
    out: dict[str, dict[str, float]] = {}
    for scenario, log in logs.items():
        run = root / f"run_{scenario}"
        result = runner.invoke(
            app,
            [
                "analyze",
                str(log),
                "--detect",
                "--only",
                "topic_health",
                "--no-figures",
                "--out",
                str(run),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["run_dir"] == str(run)
        rows = pq.read_table(run / "metrics.parquet").to_pylist()
        out[scenario] = {
            f"{r['metric']}:{r['label']}": r["value"]
            for r in rows
            if r["stage"] == "detection" and r["t_ns"] is None and r["label"]
        }
    return out


@pytest.mark.parametrize("scenario", list(FLOORS))
def test_the_clustering_detector_holds_its_floor(
    scenario: str, scored: dict[str, dict[str, float]]
) -> None:
    got = scored[scenario]
    precision, recall, ap = FLOORS[scenario]
    shown = [f"{k}={v:.3f}" for k, v in sorted(got.items()) if k.split(":")[1] in _SHOWN]
    print(scenario, " ".join(shown))  # the figures for the closing note (pytest -s)
    assert got["precision:all|iou0.5|0-20m"] >= precision
    assert got["recall:all|iou0.5|0-20m"] >= recall
    assert got["map:iou0.5|0-20m"] >= ap
    # nuScenes-style centre distance is at least as forgiving as IoU
    assert got["recall:all|dist2|0-20m"] >= got["recall:all|iou0.5|0-20m"]


def test_the_numbers_are_a_detectors_not_the_truths(scored: dict[str, dict[str, float]]) -> None:
    # a detector that read the ground truth would score 1.0; clustering does not
    for got in scored.values():
        assert got["map:iou0.5|all"] < 0.9
        assert got["recall:all|iou0.7|all"] < 0.9
