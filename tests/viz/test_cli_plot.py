"""``replay plot``: a real PNG from real logs, and one-line errors that leave no file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.commands.plot import draw, split_args
from bagscope.replay.log import open_log
from bagscope.viz.series import collect_series

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
TF_X = "/tf.transforms[0].transform.translation.x"


def _plot(*argv: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["plot", *argv])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_real_tf_bag_to_png(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    bag = shared_data / "ros1/tf_example.bag"
    code, stdout, stderr = _plot(
        str(bag), TF_X, "/tf.transforms[0].transform.rotation.z", "-o", str(out)
    )
    assert code == 0, stderr
    assert out.read_bytes()[:8] == PNG
    assert f"{TF_X}: 517 samples over 51.607 s (header times)" in stdout
    assert f"wrote {out}" in stdout
    assert list(tmp_path.iterdir()) == [out]  # the temporary file was renamed, none left
    # The PNG is the command's figure: one axes per unit, one line per series.
    with open_log(bag) as log:
        series = collect_series(log, [TF_X, "/tf.transforms[0].transform.rotation.z"])
        extent = log.storage.info
    fig = draw(series, title="tf_example.bag", start_ns=extent.start_ns, end_ns=extent.end_ns)
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= (series[0].times_ns[0] - extent.start_ns) / 1e9
    assert hi >= (series[0].times_ns[-1] - extent.start_ns) / 1e9


def test_window_and_log_time(camera_lidar_logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tf.svg"
    code, stdout, stderr = _plot(
        str(camera_lidar_logs["db3"]), TF_X, "--time", "log", "--start", "0.5", "-o", str(out)
    )
    assert code == 0, stderr
    assert f"{TF_X}: 25 samples over 0.480 s (log times)" in stdout
    assert out.read_text().lstrip().startswith("<?xml")


def test_without_output_or_display_writes_plot_png(
    camera_lidar_logs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _plot(str(camera_lidar_logs["mcap"]), TF_X)
    assert code == 0, stderr
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG
    assert f"wrote {tmp_path / 'plot.png'}" in stdout


def test_custom_types_from_the_log(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cdr.png"
    log = shared_data / "ros2/cdr_test_mcap"
    code, stdout, stderr = _plot(str(log), "/test_topic.int32_value", "-o", str(out))
    assert code == 0, stderr
    assert "/test_topic.int32_value: 3 samples" in stdout
    assert out.exists()


def test_split_args_takes_several_logs(tmp_path: Path) -> None:
    (tmp_path / "bag2").mkdir()
    logs, specs = split_args(["a.mcap", "b.mcap", str(tmp_path / "bag2"), "/imu.x", "/b.y"])
    assert logs == [Path("a.mcap"), Path("b.mcap"), tmp_path / "bag2"]
    assert specs == ["/imu.x", "/b.y"]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            "/tff.transforms[0].transform.translation.x",
            "error: topic '/tff' is not in the log; did you mean '/tf'?",
        ),
        (
            "/tf.transforms[0].transform.acceleration.x",
            "error: '/tf.transforms[0].transform.acceleration.x': no field 'acceleration' in "
            "geometry_msgs/msg/Transform; fields: translation, rotation",
        ),
        (
            "/tf.transforms[0].header.frame_id",
            "error: '/tf.transforms[0].header.frame_id' is a string, not a number",
        ),
        (
            "/tf.transforms[2].transform.translation.x",
            "error: '/tf.transforms[2].transform.translation.x': index 2 is out of range in the "
            "message logged at 1700000000.002000000 s (/tf.transforms has 1 element)",
        ),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    camera_lidar_logs: dict[str, Path], tmp_path: Path, field: str, message: str
) -> None:
    out = tmp_path / "out.png"
    code, stdout, stderr = _plot(str(camera_lidar_logs["mcap"]), TF_X, field, "-o", str(out))
    assert code == 2
    assert stderr.strip() == message
    assert "Traceback" not in stdout + stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--time", "sensor"], "error: --time must be 'header' or 'log', not 'sensor'"),
        (["-o", "x.jpg"], "error: --output must end in .png, .svg, .pdf, not 'x.jpg'"),
        (
            ["--start", "0.303", "--end", "0.32"],
            f"error: '{TF_X}': no messages on /tf in the window",
        ),
    ],
)
def test_option_errors(
    camera_lidar_logs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _plot(str(camera_lidar_logs["mcap"]), TF_X, *argv)
    assert code == 2
    assert stderr.strip() == message
    assert list(tmp_path.iterdir()) == []


def test_a_log_without_fields(camera_lidar_logs: dict[str, Path]) -> None:
    code, _, stderr = _plot(str(camera_lidar_logs["mcap"]))
    assert code == 2
    assert stderr.strip() == (
        "error: name at least one field to plot after the log: TOPIC.FIELD.PATH, "
        "e.g. /imu.linear_acceleration.x"
    )
