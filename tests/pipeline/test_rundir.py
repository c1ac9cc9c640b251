"""Run directories: every file with exact content, written all-or-nothing, read back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from bagscope.pipeline.rundir import RunDirError, load_run, log_digest, write_run
from bagscope.pipeline.runner import run_stages
from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, Table
from bagscope.replay.log import open_log
from bagscope.replay.sync import make_policy
from tests.logwriter import CAMERA, LIDAR

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.figure import Figure

    from bagscope.pipeline.runner import RunResult
    from bagscope.replay.frame import Frame

T0 = 1_700_000_000_000_000_000


class Sizes:
    """Per frame: the point count; at the end a summary, an event, a check, a table, a figure."""

    name = "sizes"

    def __init__(self) -> None:
        self.times: list[int] = []
        self.points: list[int] = []

    def process(self, frame: Frame) -> None:
        self.times.append(frame.t_ns)
        self.points.append(len(frame.clouds[LIDAR].xyz))

    def finish(self) -> StageResult:
        result = StageResult()
        result.metrics.extend("points", self.times, self.points, topic=LIDAR)
        result.metrics.add("frames", len(self.times), label="all")
        result.events.append(
            Event(
                t_ns=T0 + 500_000_000,
                end_ns=T0 + 600_000_000,
                topic=LIDAR,
                kind="small",
                severity="warning",
                message="few points",
                evidence={"points": 64},
            )
        )
        result.checks.append(
            Check(name="points", topic=LIDAR, status="warn", value="64", threshold=">= 100")
        )
        result.tables.append(Table(title="T", columns=("a", "b"), rows=((1, "x"),)))

        def draw(fig: Figure) -> None:
            ax = fig.subplots()
            ax.plot(self.times, self.points)

        result.figures.append(FigureSpec(name="points", title="Points", draw=draw))
        return result


def run_sizes(path: Path) -> RunResult:
    with open_log(path) as log:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        return run_stages(log, [Sizes()], sync=policy)


def test_every_file_of_a_run(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    result = run_sizes(camera_lidar_logs["mcap"])
    out = write_run(result, tmp_path / "runs" / "one", pipeline={"name": "p"})
    assert sorted(p.name for p in out.iterdir()) == [
        "events.jsonl",
        "figures",
        "metrics.parquet",
        "report.json",
        "run.json",
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] is True
    assert run["logs"][0]["path"] == str(camera_lidar_logs["mcap"])
    files = [f for f in camera_lidar_logs["mcap"].rglob("*") if f.is_file()]
    assert run["logs"][0]["size_bytes"] == sum(f.stat().st_size for f in files)
    assert run["logs"][0]["digest"] == log_digest([camera_lidar_logs["mcap"]])
    assert run["pipeline"] == {"name": "p"}
    assert run["stages"] == ["sizes"]
    assert run["frames_count"] == 10
    assert run["frames"]["frames"] == 10
    assert run["timings"]["stages"]["sizes"]["frames"] == 10
    assert run["timings"]["period_ns"] == 100_000_000
    assert set(run["versions"]) == {
        "python",
        "bagscope",
        "numpy",
        "rosbags",
        "pyarrow",
        "matplotlib",
    }

    table = pq.read_table(out / "metrics.parquet")
    assert table.column_names == ["t_ns", "stage", "metric", "value", "topic", "label"]
    rows = table.to_pylist()
    assert rows[:10] == [
        {
            "t_ns": T0 + i * 100_000_000,
            "stage": "sizes",
            "metric": "points",
            "value": 64.0,
            "topic": LIDAR,
            "label": None,
        }
        for i in range(10)
    ]
    assert rows[10] == {
        "t_ns": None,
        "stage": "sizes",
        "metric": "frames",
        "value": 10.0,
        "topic": None,
        "label": "all",
    }

    (line,) = (out / "events.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "t_ns": T0 + 500_000_000,
        "end_ns": T0 + 600_000_000,
        "topic": LIDAR,
        "kind": "small",
        "severity": "warning",
        "message": "few points",
        "evidence": {"points": 64},
        "stage": "sizes",
    }
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "warn"
    assert report["event_counts"] == {"info": 0, "warning": 1, "error": 0}
    assert report["checks"] == [
        {
            "stage": "sizes",
            "name": "points",
            "topic": LIDAR,
            "status": "warn",
            "value": "64",
            "threshold": ">= 100",
        }
    ]
    assert report["tables"] == [
        {"stage": "sizes", "title": "T", "columns": ["a", "b"], "rows": [[1, "x"]]}
    ]
    assert report["figures"] == [
        {"stage": "sizes", "name": "points", "title": "Points", "path": "figures/sizes__points.png"}
    ]
    assert (out / "figures" / "sizes__points.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    loaded = load_run(out)
    assert loaded.complete
    assert loaded.verdict == "warn"
    assert [e.kind for e in loaded.events] == ["small"]
    assert loaded.metrics.num_rows == 11


def test_duckdb_reads_the_metrics(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    out = write_run(run_sizes(camera_lidar_logs["bag"]), tmp_path / "r", pipeline={})
    path = str(out / "metrics.parquet")
    got = duckdb.sql(
        f"SELECT metric, count(*), sum(value) FROM '{path}' WHERE t_ns IS NOT NULL GROUP BY metric"
    ).fetchall()
    assert got == [("points", 10, 640.0)]


def test_an_existing_run_is_kept_unless_overwrite(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    result = run_sizes(camera_lidar_logs["mcap"])
    out = write_run(result, tmp_path / "r", pipeline={"v": 1})
    with pytest.raises(RunDirError) as info:
        write_run(result, out, pipeline={"v": 2})
    assert str(info.value) == f"{out} already exists; give another --out or --overwrite"
    assert json.loads((out / "run.json").read_text())["pipeline"] == {"v": 1}
    write_run(result, out, pipeline={"v": 2}, overwrite=True)
    assert json.loads((out / "run.json").read_text())["pipeline"] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_folder_that_is_not_a_run_is_never_replaced(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError) as info:
        write_run(
            run_sizes(camera_lidar_logs["mcap"]), tmp_path / "mine", pipeline={}, overwrite=True
        )
    assert str(info.value) == (
        f"{tmp_path / 'mine'} exists and is not a run directory; refusing to replace it"
    )
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_a_failure_while_writing_leaves_nothing(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    def broken_report(folder: Path) -> None:
        assert (folder / "run.json").is_file()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run(
            run_sizes(camera_lidar_logs["mcap"]), tmp_path / "r", pipeline={}, finish=broken_report
        )
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_is_marked_incomplete(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    result = run_sizes(camera_lidar_logs["mcap"])
    result.interrupted = True
    out = write_run(result, tmp_path / "r", pipeline={})
    assert load_run(out).complete is False
    assert json.loads((out / "report.json").read_text())["complete"] is False


def test_reading_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunDirError) as info:
        load_run(tmp_path)
    assert str(info.value) == f"{tmp_path} is not a run directory (no run.json)"
    (tmp_path / "run.json").write_text("{")
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(RunDirError) as info:
        load_run(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: damaged run directory (Expecting property name enclosed in double "
        "quotes at line 1)"
    )


def test_the_digest_samples_big_files_and_sees_any_change(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(40 << 20))
    first = log_digest([big])
    assert first.startswith("sha256-sampled:")
    with big.open("r+b") as fh:
        fh.seek(0)
        fh.write(b"x")
    assert log_digest([big]) != first
    with big.open("ab") as fh:
        fh.write(b"y")
    assert log_digest([big]) not in (first,)
