"""``replay convert``: whole logs between formats, real ROS1 data and a simulated drive."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import bagscope.cli  # noqa: F401  (before the command modules: they import from it)
from bagscope.cli import _ReplayGroup
from bagscope.commands.convert import convert

runner = CliRunner()
app = typer.Typer(cls=_ReplayGroup)
app.command("convert")(convert)
app.command("noop")(lambda: None)


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def counts(path: Path) -> Counter[str]:
    """Messages per topic, by rosbags' AnyReader (not bagscope's own readers)."""
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        return Counter(c.topic for c, _, _ in reader.messages())


def test_convert_real_ros1_to_mcap(shared_data: Path, tmp_path: Path) -> None:
    from mcap.reader import make_reader

    from bagscope.replay.log import open_log

    source = shared_data / "ros1" / "turtlesim_lz4.bag"
    if not source.is_file():
        pytest.skip(f"{source} is not present")
    out = tmp_path / "turtlesim.mcap"
    code, stdout, stderr = invoke("convert", source, "-o", out, "--compression", "zstd")
    assert code == 0, stderr
    want = counts(source)
    assert counts(out) == want
    assert stdout.strip() == (
        f"wrote {out} (mcap): {sum(want.values())} messages, {sum(want.values())} converted"
    )
    with out.open("rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        assert summary is not None
        assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
        types = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert types["/tf"] == "tf2_msgs/msg/TFMessage"  # tf/tfMessage, renamed as ROS2 has it
        assert sum(1 for _ in reader.iter_messages()) == sum(want.values())
    with open_log(out) as log, open_log(source) as src:
        a = [(m.topic, m.log_time_ns) for m in log.messages()]
        b = [(m.topic, m.log_time_ns) for m in src.messages()]
        assert sorted(a) == sorted(b)
        pose = next(log.messages(topics=["/turtle1/pose"])).payload
        orig = next(src.messages(topics=["/turtle1/pose"])).payload
        assert (pose.x, pose.y, pose.theta) == (orig.x, orig.y, orig.theta)  # type: ignore[attr-defined]


def test_convert_sim_mcap_to_bag_and_back(tmp_path: Path) -> None:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    scenario = make_scenario(
        "urban", seed=3, duration_ns=1_000_000_000, beams=16, camera_size=(160, 90)
    )
    source = simulate(tmp_path / "drive.mcap", scenario=scenario, workers=0).log_path
    bag = tmp_path / "drive.bag"
    code, _, stderr = invoke("convert", source, "-o", bag, "--compression", "bz2")
    assert code == 0, stderr
    assert counts(bag) == counts(source)
    back = tmp_path / "back"
    code, _, stderr = invoke("convert", bag, "-o", back, "--format", "db3")
    assert code == 0, stderr
    assert (back / "metadata.yaml").is_file()
    assert counts(back) == counts(source)
    # CDR -> ROS1 -> CDR gives back the recorded bytes (header seq dropped again)
    from rosbags.highlevel import AnyReader

    def payloads(path: Path) -> list[tuple[str, int, bytes]]:
        with AnyReader([path]) as reader:
            return sorted((c.topic, t, bytes(d)) for c, t, d in reader.messages())

    assert payloads(back) == payloads(source)


def test_convert_errors(tmp_path: Path) -> None:
    from tests.logwriter import camera_lidar_spec, write_log

    source = write_log(tmp_path / "in.mcap", camera_lidar_spec(), "mcap")
    out = tmp_path / "o.bag"
    code, _, stderr = invoke("convert", source, "-o", out, "--compression", "zstd")
    assert code == 2
    assert stderr.strip() == "error: bag output supports --compression none | lz4 | bz2, not 'zstd'"
    code, _, stderr = invoke("convert", source, "-o", out, "--format", "tar")
    assert (code, stderr.strip()) == (2, "error: --format 'tar' is not one of mcap | db3 | bag")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
