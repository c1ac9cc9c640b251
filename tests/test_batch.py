"""``replay batch``: many logs on a process pool, failures recorded, resumable, locked, and the
combined metrics/events readable by DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import bagscope
from bagscope.batch import BatchError, BatchLock, discover_logs, run_dir_name
from bagscope.cli import app
from tests.conftest import short_drives

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["batch", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 1 s drives and one file that is not a log."""
    return short_drives(tmp_path_factory.mktemp("batch_logs"), 3)


def test_batch_runs_records_failures_and_resumes(logs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = [*map(str, logs), "--out", str(out), "--workers", "2", "--no-figures"]
    code, stdout, stderr = invoke(*args)
    assert code == 1, stderr
    assert "3 of 4 logs ok (3 run, 0 skipped), 1 failed" in stdout
    run_dirs = sorted(p.name for p in (out / "runs").iterdir())
    assert run_dirs == sorted(run_dir_name(p) for p in logs[:3])
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["log"] for f in failures] == [str(logs[3])]
    assert "\n" not in failures[0]["error"]
    assert not (out / ".lock").exists()

    per_run = {
        str(log): pq.read_table(out / "runs" / run_dir_name(log) / "metrics.parquet").num_rows
        for log in logs[:3]
    }
    parquet = (out / "metrics.parquet").as_posix()
    query = "SELECT log, count(*) FROM read_parquet('{}') GROUP BY log"
    counts = dict(duckdb.execute(query.format(parquet)).fetchall())
    assert counts == per_run
    events = (out / "events.parquet").as_posix()
    event_logs = dict(duckdb.execute(query.format(events)).fetchall())
    for log in logs[:3]:
        lines = (out / "runs" / run_dir_name(log) / "events.jsonl").read_text().splitlines()
        assert event_logs.get(str(log), 0) == len(lines)
    html = (out / "summary.html").read_text()
    assert html.index(str(logs[3])) < html.index(str(logs[0]))  # the failed log first
    assert f'href="runs/{run_dir_name(logs[0])}/report.html"' in html

    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    code, stdout, stderr = invoke(*args)
    assert code == 1
    assert "skipped 3 logs already run" in stderr
    assert "3 of 4 logs ok (0 run, 3 skipped), 1 failed" in stdout
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == mtimes
    rerun = (out / "failures.jsonl").read_text().splitlines()
    assert [json.loads(line)["log"] for line in rerun] == [str(logs[3])]
    assert pq.read_table(out / "metrics.parquet").num_rows == sum(per_run.values())


def test_batch_of_good_logs_exits_0_and_a_changed_pipeline_reruns(
    logs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[[stages]]\nuse = "topic_health"\n')
    code, stdout, stderr = invoke(
        str(logs[0]), "--out", str(out), "--pipeline", str(pipeline), "--workers", "1"
    )
    assert code == 0, stderr
    assert "1 of 1 logs ok (1 run, 0 skipped), 0 failed" in stdout
    stages = pq.read_table(out / "metrics.parquet")["stage"].to_pylist()
    assert set(stages) == {"topic_health"}
    pipeline.write_text('[[stages]]\nuse = "topic_health"\ngap_factor = 5\n')
    code, stdout, _ = invoke(
        str(logs[0]), "--out", str(out), "--pipeline", str(pipeline), "--workers", "1"
    )
    assert code == 0
    assert "(1 run, 0 skipped)" in stdout


def test_a_second_batch_on_the_same_out_is_refused(logs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(f"{sleeper.pid}\n")
        code, _, stderr = invoke(str(logs[0]), "--out", str(out))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 2
    assert stderr.strip() == (
        f"error: another batch (pid {sleeper.pid}) is writing {out}; wait for it, "
        f"or remove {out / '.lock'} if it is gone"
    )
    assert not (out / "runs").exists()


def test_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(f"{dead.pid}\n")
    with BatchLock(tmp_path) as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / ".lock").exists()


def test_a_glob_matching_nothing_is_one_line(tmp_path: Path) -> None:
    code, _, stderr = invoke(str(tmp_path / "*.mcap"), "--out", str(tmp_path / "out"))
    assert code == 2
    assert stderr == f"error: no log matches '{tmp_path / '*.mcap'}'\n"
    assert not (tmp_path / "out").exists()
    code, _, stderr = invoke(str(tmp_path / "missing.bag"), "--out", str(tmp_path / "out"))
    assert stderr == f"error: {tmp_path / 'missing.bag'} does not exist\n"


def test_discovery_of_files_folders_and_rosbag2_directories(
    logs: list[Path], tmp_path: Path, camera_lidar_logs: dict[str, Path]
) -> None:
    assert discover_logs([logs[0].parent]) == sorted(logs, key=lambda p: p.name)
    assert discover_logs([str(logs[0].parent / "drive*.mcap")]) == logs[:3]
    assert discover_logs([logs[1], logs[1]]) == [logs[1]]
    ros2 = camera_lidar_logs["db3"]
    assert (ros2 / "metadata.yaml").is_file()
    assert discover_logs([ros2]) == [ros2]
    found = discover_logs([ros2.parent])
    assert ros2 in found
    assert not any(ros2 in p.parents for p in found)  # its files are not logs of their own
    with pytest.raises(BatchError, match=r"no \.bag, \.mcap, \.db3 or rosbag2 directory in"):
        discover_logs([tmp_path])


def test_batch_from_python(logs: list[Path], tmp_path: Path) -> None:
    result = bagscope.batch(logs[:1], out=tmp_path / "r", workers=1, figures=False)
    assert result.ok
    assert result.ran == [str(logs[0])]
    assert bagscope.load_run(result.run_dirs[str(logs[0])]).verdict in {"pass", "warn", "fail"}


def test_batch_with_a_pipeline_built_in_python(logs: list[Path], tmp_path: Path) -> None:
    """The README's way: a pipeline built in Python (its stages named, with parameters)
    crosses to the workers as it is."""
    from bagscope.api import pipeline

    p = pipeline(stages=[("topic_health", {"gap_factor": 5}), "timestamps"], name="py")
    result = bagscope.batch(logs[:2], out=tmp_path / "r", pipeline=p, workers=2, figures=False)
    assert result.ok, result.failures
    stages = set(pq.read_table(tmp_path / "r" / "metrics.parquet")["stage"].to_pylist())
    assert stages == {"topic_health", "timestamps"}
    run = json.loads((result.run_dirs[str(logs[0])] / "run.json").read_text())
    assert run["pipeline"]["name"] == "py"
