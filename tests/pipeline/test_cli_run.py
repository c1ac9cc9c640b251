"""``replay run``: any pipeline file over a log, into a run directory; its errors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.pipeline.rundir import load_run
from tests.logwriter import CAMERA, LIDAR, T0

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
MODULE = "tests.pipeline.stages_for_tests"
PIPELINE = f"""
[source]
topics = ["{LIDAR}", "{CAMERA}"]
[sync]
policy = "nearest"
slop = "20ms"
[[stages]]
use = "{MODULE}:PointCount"
name = "points"
minimum = 100
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_run_writes_the_run_directory(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a"
    code, stdout, stderr = invoke(
        "run",
        str(camera_lidar_logs["mcap"]),
        "--pipeline",
        str(write(tmp_path, PIPELINE)),
        "--out",
        str(out),
        "--no-figures",
    )
    assert code == 0, stderr
    run = load_run(out)
    assert run.complete
    assert run.verdict == "warn"
    assert [(e.t_ns, e.kind) for e in run.events] == [
        (T0 + i * 100_000_000, "few_points") for i in range(10)
    ]
    assert run.metrics.column("value").to_pylist() == [64.0] * 10
    assert run.run["pipeline"]["config"]["stages"][0]["minimum"] == 100
    assert run.run["pipeline"]["file"] == str(tmp_path / "p.toml")
    assert (out / "report.html").is_file()
    assert "verdict: WARN · 0 errors, 10 warnings, 0 notes" in stdout
    assert f"report: {out / 'report.html'}" in stdout


def test_run_json_prints_the_report(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "b"
    code, stdout, _ = invoke(
        "run",
        str(camera_lidar_logs["bag"]),
        "--pipeline",
        str(write(tmp_path, PIPELINE)),
        "--out",
        str(out),
        "--json",
        "--start",
        "0.5s",
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["run_dir"] == str(out)
    assert doc["verdict"] == "warn"
    assert doc["event_counts"] == {"info": 0, "warning": 5, "error": 0}


def test_a_failing_stage_is_recorded_or_stops_the_run(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    text = PIPELINE + f'[[stages]]\nuse = "{MODULE}:Explodes"\n'
    pipeline = str(write(tmp_path, text))
    log = str(camera_lidar_logs["mcap"])
    code, stdout, _ = invoke("run", log, "--pipeline", pipeline, "--out", str(tmp_path / "c"))
    assert code == 0
    assert "stage error: explodes (frame) ×7, first: RuntimeError: frame 3 is too much" in stdout
    run = load_run(tmp_path / "c")
    assert run.run["error_counts"] == {"explodes": 7}
    code, _, stderr = invoke(
        "run", log, "--pipeline", pipeline, "--out", str(tmp_path / "d"), "--fail-fast"
    )
    assert code == 2
    assert stderr.strip() == (
        f"error: stage 'explodes' failed in frame at log time {T0 + 300_000_000}: "
        "RuntimeError: frame 3 is too much"
    )
    assert not (tmp_path / "d").exists()


def test_ctrl_c_keeps_a_partial_run_marked_incomplete(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    text = PIPELINE + f'[[stages]]\nuse = "{MODULE}:Interrupts"\n'
    code, stdout, _ = invoke(
        "run",
        str(camera_lidar_logs["db3"]),
        "--pipeline",
        str(write(tmp_path, text)),
        "--out",
        str(tmp_path / "e"),
    )
    assert code == 130
    run = load_run(tmp_path / "e")
    assert not run.complete
    assert run.run["frames_count"] == 5
    assert len(run.events) == 5
    assert "(incomplete run)" in stdout


def test_user_mistakes_are_one_line(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    log = str(camera_lidar_logs["mcap"])
    bad = write(tmp_path, PIPELINE.replace("minimum = 100", "minimun = 100"))
    code, _, stderr = invoke("run", log, "--pipeline", str(bad), "--out", str(tmp_path / "x"))
    assert code == 2
    assert stderr.strip() == (
        f"error: {bad}:10: stages[0].minimun: unknown parameter; did you mean 'minimum'? "
        "parameters: minimum"
    )
    empty = write(tmp_path, "[pipeline]\nname = 'nothing'\n")
    code, _, stderr = invoke("run", log, "--pipeline", str(empty), "--out", str(tmp_path / "x"))
    assert (code, stderr.strip()) == (2, f"error: {empty}: no [[stages]] to run")
    missing_topic = write(tmp_path, PIPELINE.replace(CAMERA, "/camera/imag"))
    code, _, stderr = invoke(
        "run", log, "--pipeline", str(missing_topic), "--out", str(tmp_path / "x")
    )
    assert code == 2
    assert stderr.strip() == (
        "error: topic '/camera/imag' is not in the log; did you mean '/camera/image/compressed'?"
    )
    code, _, stderr = invoke("run", log, "--out", str(tmp_path / "x"))
    assert code == 2
    assert stderr.strip() == "error: Missing option '--pipeline' (see 'replay run --help')"
    assert not (tmp_path / "x").exists()
    good = write(tmp_path, PIPELINE)
    (tmp_path / "taken").mkdir()
    code, _, stderr = invoke("run", log, "--pipeline", str(good), "--out", str(tmp_path / "taken"))
    assert (code, stderr.strip()) == (
        2,
        f"error: {tmp_path / 'taken'} already exists; give another --out or --overwrite",
    )
