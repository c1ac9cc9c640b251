"""Acceptance: the analyzers find what the simulator injects, and nothing on clean drives.

Over all three scenarios, one drive per fault kind (and one clean drive each), every drive is
analysed with ``replay analyze`` and scored with ``replay score --json`` against its own
``.truth.json``: the simulator and the analyzers check each other through the command line,
exactly as a user would.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.sim.choices import SCENARIOS

DURATION_NS = 4_000_000_000
# One fault per drive: every kind the simulator knows, on the topic it is typical for.
FAULTS = {
    "drop": "drop:/lidar/points=0.2",
    "duplicate": "duplicate:/imu=0.05",
    "reorder": "reorder:/odom=0.05",
    "corrupt": "corrupt:/camera/image/compressed=0.1",
    "outage": "outage:/camera/image/compressed=1.5s+1s",
    "stale_tf": "stale_tf:1.5s+1s",
    "delay": "delay:/camera/image/compressed=40ms",
    "jitter": "jitter:/odom=5ms",
    "clock_offset": "clock_offset:/lidar/points=-80ms",
    "drift": "drift:/imu=2000ppm",
    "zero_stamps": "zero_stamps:/camera/image/compressed=0.05",
    "freeze": "freeze:/camera/image/compressed=1.5s+1s",
    "pose_jump": "pose_jump:/odom=2s+6m",
    "blocked_sector": "blocked_sector:/lidar/points=1.5s+1.5s@30:90",
}
runner = CliRunner()


def _simulate(out: Path, scenario: str, seed: int, faults: str | None) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    config = make_scenario(
        scenario, seed=seed, duration_ns=DURATION_NS, beams=16, camera_size=(320, 180)
    )
    return simulate(out, scenario=config, faults=faults, workers=0).log_path


@pytest.fixture(scope="module")
def drives(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(scenario, fault kind or 'clean') -> log path; seeds differ from drive to drive."""
    root = tmp_path_factory.mktemp("fault_drives")
    jobs = {}
    seed = 100
    for scenario in SCENARIOS:
        for kind, spec in [("clean", None), *FAULTS.items()]:
            jobs[(scenario, kind)] = (root / f"{scenario}_{kind}.mcap", scenario, seed, spec)
            seed += 1
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {key: pool.submit(_simulate, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def _analyze(log: Path, out: Path) -> dict[str, object]:
    result = runner.invoke(app, ["analyze", str(log), "--out", str(out), "--no-figures", "--json"])
    assert result.exit_code == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _score(run: Path, log: Path) -> dict[str, object]:
    truth = log.with_name(f"{log.name}.truth.json")
    result = runner.invoke(app, ["score", str(run), "--truth", str(truth), "--json"])
    assert result.exit_code == 0, result.stderr
    score: dict[str, object] = json.loads(result.stdout)
    return score


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_come_out_clean(
    scenario: str, drives: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    report = _analyze(drives[(scenario, "clean")], tmp_path / "run")
    events = [
        json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    ]
    loud = [e["message"] for e in events if e["severity"] != "info"]
    assert loud == []
    assert report["verdict"] == "pass"


def test_every_fault_kind_is_found(drives: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    found = missed = 0
    rows = []
    alarms = []
    for (scenario, kind), log in sorted(drives.items()):
        if kind == "clean":
            continue
        run = tmp_path / f"{scenario}_{kind}"
        _analyze(log, run)
        score = _score(run, log)
        (fault,) = score["faults"]  # type: ignore[index]
        assert fault["kind"] == kind
        if fault["found"] is None:  # a probability fault that touched no message
            continue
        found += fault["found"]
        missed += not fault["found"]
        rows.append((scenario, kind, fault["found"], fault["time_error_ns"]))
        alarms += [(scenario, kind, n) for n in [score["false_alarms"]] if n]
    misses = [r for r in rows if not r[2]]
    assert found / (found + missed) >= 0.95, misses
    assert {kind for _, kind, ok, _ in rows if ok} == set(FAULTS), misses
    assert alarms == []
