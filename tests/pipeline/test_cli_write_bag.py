"""``replay run --write-bag OUT``: the run directory as before, plus the results bag; refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcap.reader import make_reader
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.pipeline.rundir import load_run
from tests.logwriter import CAMERA, LIDAR

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
MODULE = "tests.pipeline.test_results_bag"
PIPELINE = f"""
[source]
topics = ["{LIDAR}", "{CAMERA}"]
[sync]
policy = "nearest"
slop = "20ms"
[[stages]]
use = "{MODULE}:HandBoxes"
name = "det"
count = 2
[[stages]]
use = "{MODULE}:EveryTenth"
name = "sparse"
"""
FAILING = (
    PIPELINE
    + """
[[stages]]
use = "tests.pipeline.stages_for_tests:Explodes"
name = "boom"
"""
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run(tmp_path: Path, log: Path, *extra: str, text: str = PIPELINE) -> tuple[int, str, str]:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(text)
    return invoke("run", str(log), "--pipeline", str(pipeline), "--no-figures", *extra)


def topics_of(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with path.open("rb") as f:
        for _, channel, _ in make_reader(f).iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    return counts


def test_write_bag_writes_log_and_results(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    out, bag = tmp_path / "runs" / "a", tmp_path / "bags" / "a.mcap"
    code, stdout, stderr = run(
        tmp_path, camera_lidar_logs["mcap"], "--out", str(out), "--write-bag", str(bag)
    )
    assert code == 0, stderr
    assert load_run(out).complete
    counts = topics_of(bag)
    assert counts == {
        "/tf_static": 1,
        LIDAR: 10,
        CAMERA: 30,
        "/camera/camera_info": 30,
        "/tf": 50,
        "/bagscope/det/detections": 10,
        "/bagscope/det/markers": 10,
        "/bagscope/sparse/points": 10,
    }
    assert "write_bag: results bag" in stdout
    assert sorted(p.name for p in bag.parent.iterdir()) == ["a.mcap"]


def test_write_bag_from_a_ros1_log(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    bag = tmp_path / "b.mcap"
    code, _, stderr = run(
        tmp_path, camera_lidar_logs["bag"], "--out", str(tmp_path / "r"), "--write-bag", str(bag)
    )
    assert code == 0, stderr
    assert topics_of(bag)["/bagscope/det/markers"] == 10


def test_existing_bag_is_refused_without_overwrite(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    bag = tmp_path / "b.mcap"
    bag.write_bytes(b"keep me")
    out = tmp_path / "r"
    code, _, stderr = run(
        tmp_path, camera_lidar_logs["mcap"], "--out", str(out), "--write-bag", str(bag)
    )
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: {bag} already exists; give another --write-bag or --overwrite"
    ]
    assert bag.read_bytes() == b"keep me"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mcap", "p.toml"]
    code, _, stderr = run(
        tmp_path,
        camera_lidar_logs["mcap"],
        "--out",
        str(out),
        "--write-bag",
        str(bag),
        "--overwrite",
    )
    assert code == 0, stderr
    assert topics_of(bag)["/bagscope/det/detections"] == 10


def test_a_bag_name_is_refused(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    code, _, stderr = run(
        tmp_path,
        camera_lidar_logs["mcap"],
        "--out",
        str(tmp_path / "r"),
        "--write-bag",
        str(tmp_path / "x.bag"),
    )
    assert code == 2
    assert "--write-bag writes ROS2 bags; name it *.mcap" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_a_failed_run_leaves_no_bag(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    bag = tmp_path / "bags" / "c.mcap"
    code, _, stderr = run(
        tmp_path,
        camera_lidar_logs["mcap"],
        "--out",
        str(tmp_path / "r"),
        "--write-bag",
        str(bag),
        "--fail-fast",
        text=FAILING,
    )
    assert code == 2, stderr
    assert "boom" in stderr
    assert list(bag.parent.iterdir()) == []
