"""Field series and figures, on logs whose contents are known exactly.

Series are checked against values computed independently (the log writer's formulas, or
rosbags' own reader on the real logs); figures by what they hold (axes, lines, patches,
limits), drawn on a plain Figure as the command does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from bagscope.models.projection import ProjectToCamera
from bagscope.replay.errors import TopicError
from bagscope.replay.log import open_log
from bagscope.replay.sync import make_policy
from bagscope.viz.plots import plot_bev, plot_lidar_on_image, plot_series, series_groups
from bagscope.viz.series import SeriesError, collect_series, parse_field_path
from tests.logwriter import T0

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame

TF_X = "/tf.transforms[0].transform.translation.x"
MS = 1_000_000
LATENCY = 2 * MS


# -- collecting -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_tf_translation_values_and_header_stamps(
    camera_lidar_logs: dict[str, Path], fmt: str
) -> None:
    with open_log(camera_lidar_logs[fmt]) as log:
        (x,) = collect_series(log, [TF_X])
    assert x.values.tolist() == [k * 0.2 for k in range(50)]
    assert x.times_ns.tolist() == [T0 + k * 20 * MS for k in range(50)]
    assert x.time_source == "header"
    assert (x.topic, x.field, x.msgtype, x.unit) == (
        "/tf",
        "transforms[0].transform.translation.x",
        "tf2_msgs/msg/TFMessage",
        "m",
    )


def test_log_times_and_several_series_of_one_pass(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log:
        x, k0, y = collect_series(
            log,
            [TF_X, "camera/camera_info.k[0]", "/tf.transforms[0].transform.translation.y"],
            time="log",
        )
    assert x.times_ns.tolist() == [T0 + k * 20 * MS + LATENCY for k in range(50)]
    assert x.time_source == "log"
    assert y.values.tolist() == [0.0] * 50
    cam_stamps = [T0 + 3 * MS + round(i * 1e9 / 30) for i in range(30)]
    assert k0.topic == "/camera/camera_info"
    assert k0.values.tolist() == [100.0] * 30
    assert k0.times_ns.tolist() == [s + LATENCY for s in cam_stamps]


def test_window_bounds_the_log_time(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["db3"]) as log:
        (x,) = collect_series(log, [TF_X], start=T0 + 100 * MS, end=T0 + 200 * MS)
        # log times are stamp + 2 ms: stamps 100..180 ms are logged inside the window
        assert x.values.tolist() == [k * 0.2 for k in range(5, 10)]
        with pytest.raises(
            SeriesError,
            match=r"^'/tf\.transforms\[0\]\.transform\.translation"
            r"\.x': no messages on /tf in the window$",
        ):
            collect_series(log, [TF_X], start=T0 + 5 * 10**9)


def test_real_tf_bag_agrees_with_rosbags(shared_data: Path) -> None:
    from rosbags.highlevel import AnyReader

    path = shared_data / "ros1/tf_example.bag"
    expected_t, expected_x, expected_log = [], [], []
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic == "/tf"]
        for conn, log_ns, raw in reader.messages(connections=conns):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            stamp = msg.transforms[0].header.stamp
            expected_t.append(stamp.sec * 10**9 + stamp.nanosec)
            expected_x.append(msg.transforms[0].transform.translation.x)
            expected_log.append(log_ns)
    with open_log(path) as log:
        (x,) = collect_series(log, [TF_X])
        (x_log,) = collect_series(log, [TF_X], time="log")
    assert len(x) == 517
    assert x.values.tolist() == expected_x
    assert x.times_ns.tolist() == expected_t
    assert x_log.times_ns.tolist() == expected_log


def test_custom_type_from_the_logs_own_definitions(shared_data: Path) -> None:
    with open_log(shared_data / "ros2/cdr_test_sqlite3") as log:
        value, flag = collect_series(
            log, ["/test_topic.int32_value", "/array_topic.bool_values[0]"]
        )
    assert value.values.tolist() == [123.0] * 3
    assert value.time_source == "log"  # BasicTypes has no header
    assert flag.values.tolist() == [1.0] * 4


# -- paths and their errors -------------------------------------------------------------------
def test_longest_topic_prefix_wins() -> None:
    path = parse_field_path("/a.b.c[2].d", ["/a", "/a.b"])
    assert (path.topic, path.steps, path.field) == ("/a.b", ("c", 2, "d"), "c[2].d")
    assert parse_field_path("scan.ranges[-1]", ["/scan"]).steps == ("ranges", -1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "/tff.transforms[0].transform.translation.x",
            "topic '/tff' is not in the log; did you mean '/tf'?",
        ),
    ],
)
def test_unknown_topic_suggests(
    camera_lidar_logs: dict[str, Path], spec: str, message: str
) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log, pytest.raises(TopicError) as caught:
        collect_series(log, [spec])
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "/tf.transforms[0].transform.translation.w",
            "'/tf.transforms[0].transform.translation.w': no field 'w' in "
            "geometry_msgs/msg/Vector3; fields: x, y, z",
        ),
        (
            "/camera/camera_info.K[0]",
            "'/camera/camera_info.K[0]': no field 'K' in sensor_msgs/msg/CameraInfo; fields: "
            "header, height, width, distortion_model, d, k, r, p, binning_x, binning_y, roi",
        ),
        (
            "/tf.transforms[0].child_frame_id",
            "'/tf.transforms[0].child_frame_id' is a string, not a number",
        ),
        (
            "/tf.transforms[0].transform",
            "'/tf.transforms[0].transform' is a geometry_msgs/msg/Transform message, not a "
            "number; pick one of its fields: translation, rotation",
        ),
        (
            "/camera/camera_info.k",
            "'/camera/camera_info.k' is an array of 9 × float64, not a number; pick one element, "
            "e.g. /camera/camera_info.k[0]",
        ),
        (
            "/camera/camera_info.k[9]",
            "'/camera/camera_info.k[9]': index 9 is out of range for /camera/camera_info.k (an "
            "array of 9 × float64)",
        ),
        (
            "/tf.transforms.x",
            "'/tf.transforms.x': /tf.transforms is a sequence of "
            "geometry_msgs/msg/TransformStamped; pick an element first, e.g. /tf.transforms[0].x",
        ),
        (
            "/tf",
            "'/tf' names a topic (tf2_msgs/msg/TFMessage) but no field; pick one of its fields: "
            "transforms",
        ),
        (
            "/tf.transforms[1].transform.translation.x",
            f"'/tf.transforms[1].transform.translation.x': index 1 is out of range in the message "
            f"logged at {T0 // 10**9}.{LATENCY:09d} s (/tf.transforms has 1 element)",
        ),
    ],
)
def test_field_errors_name_what_exists(
    camera_lidar_logs: dict[str, Path], spec: str, message: str
) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log, pytest.raises(SeriesError) as caught:
        collect_series(log, [spec])
    assert str(caught.value) == message


# -- time-series figures ----------------------------------------------------------------------
def test_series_figure_one_axes_per_unit(camera_lidar_logs: dict[str, Path]) -> None:
    specs = [
        TF_X,
        "/tf.transforms[0].transform.translation.y",
        "/tf.transforms[0].transform.rotation.w",
    ]
    with open_log(camera_lidar_logs["mcap"]) as log:
        series = collect_series(log, specs)
    assert [[s.name for s in g] for g in series_groups(series)] == [specs[:2], specs[2:]]
    fig = plot_series(series, fig=Figure(), origin_ns=T0, title="drive")
    metres, rotation = fig.axes
    assert [line.get_label() for line in metres.lines] == specs[:2]
    assert len(rotation.lines) == 1
    assert metres.get_ylabel() == "value (m)"
    assert rotation.get_ylabel() == specs[2]
    assert rotation.get_xlabel() == "time since log start (s)"
    xs = metres.lines[0].get_xdata()
    assert np.allclose(np.asarray(xs), [k * 0.02 for k in range(50)])
    lo, hi = metres.get_xlim()
    assert lo <= 0.0
    assert hi >= 0.98
    ylo, yhi = metres.get_ylim()
    assert ylo <= 0.0
    assert yhi >= 49 * 0.2
    assert fig.get_suptitle() == "drive"


def test_series_on_one_given_axes(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["bag"]) as log:
        series = collect_series(log, [TF_X, "/lidar/points.width"])
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_series(series, ax=ax) is fig
    assert len(fig.axes) == 1
    assert len(ax.lines) == 2


# -- frames -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_frame(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    path = tmp_path_factory.mktemp("sim") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=1, duration_ns=1_000_000_000, beams=16, camera_size=(320, 180)
    )
    simulate(path, scenario=scenario)
    log = open_log(path)
    policy = make_policy(
        "nearest",
        ["/lidar/points", "/ground_truth/objects", "/camera/image/compressed"],
        slop_ns=50_000_000,
    )
    frame = next(iter(log.frames(policy)))
    yield frame
    log.close()


def _gids(ax: Any, gid: str) -> int:
    return sum(1 for p in ax.patches if p.get_gid() == gid)


def test_bev_draws_every_box_in_range(sim_frame: Frame) -> None:
    truth: Any = sim_frame.messages["/ground_truth/objects"].decode()
    assert len(truth) > 10
    predicted = truth.select(np.arange(0, len(truth), 3))
    ax = Figure().add_subplot()
    plot_bev(sim_frame, ax=ax, boxes=[predicted], range_m=500)
    assert _gids(ax, "truth") == len(truth)
    assert _gids(ax, "prediction") == len(predicted)
    assert _gids(ax, "ego") == 1
    assert ax.get_xlim() == (-500, 500)
    assert ax.get_aspect() == 1.0
    assert ax.get_xlabel() == "x (m, lidar)"
    assert ax.get_ylabel() == "y (m)"
    texts = {t.get_text() for t in ax.texts}
    assert set(truth.ids) <= texts  # every box labelled with its track id
    # the points: one rasterized collection coloured by height
    (dots,) = ax.collections
    assert dots.get_rasterized()
    cloud = sim_frame.clouds["/lidar/points"]
    assert len(np.asarray(dots.get_offsets())) == int(cloud.finite_mask.sum())


def test_bev_range_and_outputs(sim_frame: Frame) -> None:
    truth: Any = sim_frame.messages["/ground_truth/objects"].decode()
    frame = sim_frame
    frame.outputs["detector"] = truth.select(np.arange(0, len(truth), 2))
    try:
        ax = Figure().add_subplot()
        plot_bev(frame, ax=ax, range_m=20)
        near = (np.abs(truth.centers[:, 0]) <= 20) & (np.abs(truth.centers[:, 1]) <= 20)
        assert _gids(ax, "truth") == int(near.sum())
        assert _gids(ax, "prediction") == int(near[::2].sum())
        ax = Figure().add_subplot()
        plot_bev(frame, ax=ax, truth=False, boxes=["detector"], range_m=500)
        assert _gids(ax, "truth") == 0
        assert _gids(ax, "prediction") == len(range(0, len(truth), 2))
    finally:
        del frame.outputs["detector"]


def test_lidar_on_image_matches_the_projection_stage(sim_frame: Frame) -> None:
    topic = "/camera/image/compressed"
    expected = ProjectToCamera(images=[topic]).process(sim_frame)[topic]
    ax = Figure().add_subplot()
    plot_lidar_on_image(sim_frame, ax=ax)
    (dots,) = ax.collections
    assert len(np.asarray(dots.get_offsets())) == len(expected.depth) > 100
    assert sorted(dots.get_array().tolist()) == sorted(expected.depth.tolist())  # type: ignore[union-attr]
    assert ax.get_xlim() == (0, 320)
    assert ax.get_ylim() == (180, 0)
    colorbar_axes = ax.get_figure().axes[1]  # type: ignore[union-attr]
    assert colorbar_axes.get_ylabel() == "depth (m)"


def test_importing_viz_is_cheap() -> None:
    code = "import sys, bagscope.viz; print(sorted({'numpy', 'matplotlib'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
