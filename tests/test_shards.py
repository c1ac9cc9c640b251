"""Time shards: a long log split, run in parallel and merged gives the very run one read gives,
metric by metric, event by event, check by check."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import bagscope
from bagscope.batch import run_dir_name
from bagscope.batch.local import LocalEngine
from bagscope.batch.schedule import drive, shard_folder
from bagscope.batch.tasks import Job, run_shard_job
from bagscope.cli import app
from bagscope.pipeline import shards as shards_module
from bagscope.pipeline.shards import ShardPlan, merge_values, plan_shards
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate

SECOND = 1_000_000_000
# Faults across the 2 s shard edges: an outage over the first edge, drops and a freeze
# over the second, so that events begin in one shard and end in the next.
FAULTS = (
    "outage:/camera/image/compressed=1.5s+1s,drop:/lidar/points=0.1,"
    "freeze:/camera/image/compressed=3.5s+1s"
)
MODELS = (Path(__file__).resolve().parents[1] / "examples/pipelines/lidar_models.toml").read_text()


@pytest.fixture(scope="module")
def drive_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    scenario = make_scenario(
        "urban", seed=5, duration_ns=6 * SECOND, beams=16, camera_size=(160, 90)
    )
    return simulate(root / "drive.mcap", scenario=scenario, faults=FAULTS, workers=0).log_path


def _metrics(run_dir: Path) -> list[tuple[Any, ...]]:
    """Every metric row but the wall-clock timings (two unsharded runs differ there too)."""
    rows = pq.read_table(run_dir / "metrics.parquet").to_pylist()
    out = []
    for r in rows:
        if r["stage"] == "stage_timing":
            continue
        value = "nan" if math.isnan(r["value"]) else r["value"]
        key = (r["stage"], r["metric"], r["topic"] or "", r["label"] or "")
        out.append((*key, -1 if r["t_ns"] is None else r["t_ns"], value))
    return sorted(out)


def _events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["stage"] != "stage_timing"]


def _checks(run_dir: Path) -> list[dict[str, Any]]:
    checks = json.loads((run_dir / "report.json").read_text())["checks"]
    return [c for c in checks if c["stage"] != "stage_timing"]


def _pair(log: Path, tmp_path: Path, pipeline: Path | None) -> tuple[Path, Path]:
    one = bagscope.batch([log], out=tmp_path / "one", workers=2, figures=False, pipeline=pipeline)
    split = bagscope.batch(
        [log], out=tmp_path / "split", workers=2, figures=False, pipeline=pipeline,
        shard_length="2s",
    )  # fmt: skip
    assert one.ok, one.failures
    assert split.ok, split.failures
    return one.run_dirs[str(log)], split.run_dirs[str(log)]


def test_the_default_analysis_sharded_equals_one_read(drive_log: Path, tmp_path: Path) -> None:
    one, split = _pair(drive_log, tmp_path, None)
    sharding = json.loads((split / "run.json").read_text())["sharding"]
    assert len(sharding["shards"]) == 3
    assert sharding["sharded"] == ["pointcloud", "image"]
    assert sharding["at_merge"] == ["stage_timing"]
    assert json.loads((one / "run.json").read_text())["sharding"] is None
    metrics = _metrics(one)
    assert len(metrics) > 1000
    assert _metrics(split) == metrics
    events = _events(one)
    assert {e["kind"] for e in events} >= {"gap", "freeze"}  # the faults across the edges
    assert _events(split) == events
    assert _checks(split) == _checks(one)
    run_one = json.loads((one / "run.json").read_text())
    run_split = json.loads((split / "run.json").read_text())
    for key in ("frames", "messages", "frames_count", "log_digest", "window"):
        assert run_split[key] == run_one[key], key
    # the batch's own tables are the same too, less the timings
    assert not (split.parent / ".shards").exists()  # kept shards are gone once merged


def test_frame_models_sharded_equal_one_read(drive_log: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "models.toml"
    pipeline.write_text(MODELS)
    one, split = _pair(drive_log, tmp_path, pipeline)
    sharding = json.loads((split / "run.json").read_text())["sharding"]
    assert sharding["sharded"] == [
        "deskew", "voxel_downsample", "ground_segmentation", "clustering",
        "project_to_camera", "pointcloud", "image",
    ]  # fmt: skip
    assert sharding["whole"] == ["sync", "topic_health"]
    metrics = _metrics(one)
    assert {m[0] for m in metrics} >= {"clustering", "voxel_downsample", "project_to_camera"}
    assert _metrics(split) == metrics
    assert _events(split) == _events(one)
    assert _checks(split) == _checks(one)


def test_a_tracker_keeps_every_frame_stage_whole(drive_log: Path) -> None:
    from bagscope.api import prepare, resolve_pipeline
    from bagscope.replay.log import open_log

    text = MODELS.replace(
        '[[stages]]\nuse = "sync"',
        '[[stages]]\nuse = "tracker"\ninput = "clustering"\n\n[[stages]]\nuse = "sync"',
    )
    path = drive_log.parent / "tracker.toml"
    path.write_text(text)
    with open_log([drive_log]) as log:
        stages = prepare(log, resolve_pipeline(path)).stages
        info = log.info()
    plan = plan_shards(stages, start_ns=info.start_ns, end_ns=info.end_ns + 1, shard_ns=2 * SECOND)
    assert plan.split
    assert plan.sharded == ("pointcloud", "image")  # the message stages still split
    assert plan.whole == (
        "deskew", "voxel_downsample", "ground_segmentation", "clustering",
        "project_to_camera", "tracker", "sync", "topic_health",
    )  # fmt: skip
    short = plan_shards(stages, start_ns=0, end_ns=2 * SECOND, shard_ns=2 * SECOND)
    assert short.reason == "the log is not longer than one shard"
    assert not short.split


def test_merge_values_joins_columns_in_order() -> None:
    from array import array
    from collections import Counter

    merged = merge_values(
        [
            {"a": array("q", [1, 2]), "n": 2, "note": "", "ok": True, "c": Counter(x=1)},
            {"a": array("q", [3]), "n": 1, "note": "bad frame", "ok": False, "c": Counter(x=2)},
        ]
    )
    assert merged == {
        "a": array("q", [1, 2, 3]), "n": 3, "note": "bad frame", "ok": False, "c": Counter(x=3),
    }  # fmt: skip
    with pytest.raises(TypeError, match="no exact merge for a float"):
        merge_values([1.0, 2.0])


class CountingEngine(LocalEngine):
    """The real process pool, counting what it is given."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.submitted: list[str] = []

    def submit(self, fn: Any, arg: Any) -> int:
        self.submitted.append(fn.__name__)
        return super().submit(fn, arg)


def test_a_resumed_batch_reuses_the_shards_it_finished(drive_log: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / run_dir_name(drive_log)
    job = Job(log=str(drive_log), run_dir=str(run_dir), pipeline=None, figures=False,
              shard_ns=2 * SECOND)  # fmt: skip
    folder = shard_folder(job, log_digest="d", pipeline_digest="p")
    # shard 1 finished before the batch was cut short: kept where the batch keeps it
    from bagscope.batch.schedule import _store
    from bagscope.batch.tasks import ShardJob

    kept = run_shard_job(ShardJob(job=job, index=1, count=3))
    assert not isinstance(kept, dict)
    _store(folder, kept)
    outcomes: list[dict[str, Any]] = []
    with CountingEngine(2) as engine:
        drive(engine, [job], on_done=outcomes.append, folders=lambda _: folder)
    assert engine.submitted == ["run_job", "run_shard_job", "run_shard_job", "run_merge_job"]
    assert [o.get("error") for o in outcomes] == [None]
    assert (run_dir / "run.json").is_file()
    assert not folder.exists()


def test_shards_that_make_other_frames_fail_loudly(
    drive_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without overlap the sync cannot see a partner across the edge: the merge refuses."""
    monkeypatch.setattr(shards_module, "SHARD_OVERLAP_NS", 0)
    job = Job(log=str(drive_log), run_dir=str(tmp_path / "run"), pipeline=None,
              figures=False, shard_ns=SECOND // 2 + 1)  # fmt: skip
    from bagscope.batch.tasks import MergeJob, ShardJob, run_job, run_merge_job

    planned = run_job(job)
    count = planned["shards"]
    outputs = [run_shard_job(ShardJob(job=job, index=i, count=count)) for i in range(count)]
    outcome = run_merge_job(MergeJob(job=job, shards=tuple(outputs)))  # type: ignore[arg-type]
    assert outcome["error"].startswith("the shards made ")
    assert outcome["error"].endswith("run this log without --shard-length")
    assert not (tmp_path / "run").exists()


def test_shard_length_on_the_command_line(drive_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(
        app, ["batch", str(drive_log), "--out", str(out), "--shard-length", "2s",
              "--workers", "2", "--no-figures"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "1 of 1 logs ok (1 run, 0 skipped), 0 failed" in result.stdout
    run = json.loads((out / "runs" / run_dir_name(drive_log) / "run.json").read_text())
    assert run["sharding"]["shard_ns"] == 2 * SECOND
    bad = CliRunner().invoke(
        app, ["batch", str(drive_log), "--out", str(tmp_path / "x"), "--shard-length", "soon"]
    )
    assert bad.exit_code == 2
    assert bad.stderr == (
        "error: --shard-length: cannot read 'soon' as a duration: write e.g. 50ms, 1.5s, 2m\n"
    )
    assert not (tmp_path / "x").exists()


def test_a_plan_without_splittable_stages_says_why() -> None:
    from bagscope.analyzers.topic_health import TopicHealth

    plan = plan_shards([TopicHealth()], start_ns=0, end_ns=10 * SECOND, shard_ns=SECOND)
    assert plan == ShardPlan(
        windows=((None, None),), sharded=(), whole=("topic_health",), at_merge=(),
        reason="no stage of this pipeline can be split into time shards",
    )  # fmt: skip


def test_latest_before_finds_a_latched_message_beyond_the_look_back(drive_log: Path) -> None:
    """/tf_static is published once at the start: it is still what a shard 3 s in has seen."""
    from bagscope.replay.log import open_log

    with open_log([drive_log]) as log:
        start = log.info().start_ns
        static = list(log.messages(topics=["/tf_static"]))
        infos = list(log.messages(start, start + 3 * SECOND, topics=["/camera/camera_info"]))
        found = log.latest_before(
            ["/camera/camera_info", "/tf_static"], start + 3 * SECOND, look_back_ns=SECOND
        )
    assert len(static) == 1
    assert [(m.topic, m.log_time_ns) for m in found] == [
        ("/camera/camera_info", infos[-1].log_time_ns),
        ("/tf_static", static[0].log_time_ns),
    ]
