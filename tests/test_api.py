"""The Python API: ``bagscope.run`` / ``Run.save`` / ``bagscope.load_run`` on a simulated drive,
pipelines built in Python with stage objects, and the notebook example run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import bagscope
from bagscope.api import pipeline
from bagscope.pipeline.config import PipelineError
from bagscope.pipeline.stage import Event, StageResult
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=5, duration_ns=1_000_000_000, beams=16, camera_size=(160, 90)
    )
    return simulate(out, scenario=scenario, workers=0).log_path


class FrameCounter:
    """Counts frames; one warning event at the first, so the verdict is ``warn``."""

    def __init__(self) -> None:
        self.name = "frame_counter"
        self.times: list[int] = []

    def process(self, frame: bagscope.Frame) -> None:
        self.times.append(frame.t_ns)

    def finish(self) -> StageResult:
        result = StageResult()
        result.metrics.add("frames", len(self.times))
        result.events.append(
            Event(
                t_ns=self.times[0], end_ns=self.times[0], topic=None, kind="first",
                severity="warning", message="first frame",
            )
        )  # fmt: skip
        return result


def test_run_save_load_round_trip(drive: Path, tmp_path: Path) -> None:
    run = bagscope.run(drive)
    assert run.run_dir is None
    assert run.complete
    assert run.verdict == "pass"
    names = set(run.metrics["stage"].to_pylist())
    assert {"topic_health", "latency", "image", "pointcloud", "stage_timing"} <= names
    saved = run.save(tmp_path / "run")
    assert saved == tmp_path / "run" == run.run_dir
    assert pq.read_table(saved / "metrics.parquet").num_rows == run.metrics.num_rows
    lines = (saved / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json() for e in run.events]
    assert run.report["verdict"] == run.verdict

    loaded = bagscope.load_run(saved)
    assert isinstance(loaded, bagscope.Run)
    assert loaded.verdict == run.verdict
    assert loaded.metrics.num_rows == run.metrics.num_rows
    assert loaded.events == run.events
    assert loaded.pipeline["digest"] == run.pipeline["digest"]
    # a loaded run saves as a copy of its directory
    copy = loaded.save(tmp_path / "copy")
    assert bagscope.load_run(copy).metrics.num_rows == run.metrics.num_rows


def test_run_with_out_writes_the_run_directory(drive: Path, tmp_path: Path) -> None:
    run = bagscope.run(drive, out=tmp_path / "r", figures=False)
    assert run.run_dir == tmp_path / "r"
    assert pq.read_table(tmp_path / "r" / "metrics.parquet").num_rows == run.metrics.num_rows
    with pytest.raises(bagscope.BagscopeError, match="already exists"):
        bagscope.run(drive, out=tmp_path / "r")


def test_python_pipeline_with_a_stage_object(drive: Path) -> None:
    counter = FrameCounter()
    p = pipeline(
        sync=["/lidar/points", "/camera/image/compressed"],
        slop="50ms",
        stages=[("topic_health", {"gap_factor": 4}), counter],
    )
    run = bagscope.run(drive, p)
    assert run.result is not None
    assert run.result.stages == ("topic_health", "frame_counter")
    assert len(counter.times) == 10  # 1 s of 10 Hz lidar
    frames = run.metrics.filter([s == "frame_counter" for s in run.metrics["stage"].to_pylist()])
    assert frames["value"].to_pylist() == [10.0]
    assert run.verdict == "warn"
    assert [e.kind for e in run.events if e.stage == "frame_counter"] == ["first"]
    assert run.pipeline["config"]["stages"][1]["use"] == "tests.test_api:FrameCounter"


def test_python_pipeline_checks_parameters_before_reading(drive: Path) -> None:
    p = pipeline(stages=[("topic_health", {"gap_factr": 4})])
    with pytest.raises(
        PipelineError, match="gap_factr: unknown parameter; did you mean 'gap_factor'"
    ):
        bagscope.run(drive, p)
    with pytest.raises(PipelineError, match="unknown sync policy 'closest'"):
        pipeline(sync=["/a"], policy="closest")


def test_toml_pipeline_runs_only_its_stages(drive: Path, tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[[stages]]\nuse = "topic_health"\n')
    run = bagscope.run(drive, toml)
    assert set(run.metrics["stage"].to_pylist()) == {"topic_health"}
    both = bagscope.run(drive, toml, analysis=True)
    assert "latency" in set(both.metrics["stage"].to_pylist())


def test_run_accepts_an_open_log_and_leaves_it_open(drive: Path) -> None:
    with bagscope.open_log(drive) as log:
        run = bagscope.run(log, pipeline(stages=["topic_health"]))
        assert log.info().message_count > 0
    assert run.verdict == "pass"


def test_notebook_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "verdict: pass" in done.stdout
    assert "rates (Hz): [('/camera/camera_info'," in done.stdout
    png = tmp_path / "latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "run" / "report.html").is_file()
    rows = pq.read_table(tmp_path / "run" / "metrics.parquet").num_rows
    assert f"metrics: {rows} rows" in done.stdout
