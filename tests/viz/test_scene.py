"""build_scene on a simulated drive: every primitive checked against TF and the camera model,
computed here independently of the scene builder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from bagscope.models.projection import depth_colors
from bagscope.replay.decode.boxes import Boxes
from bagscope.viz.scene import build_scene, class_color, colormap
from bagscope.viz.view import ViewError, ViewSpec

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame

CLOUD = "/lidar/points"
IMAGE = "/camera/image/compressed"
TRUTH = "/ground_truth/objects"


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    out = tmp_path_factory.mktemp("scene") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=3, duration_ns=1_500_000_000, beams=16, camera_size=(320, 180)
    )
    return simulate(out, scenario=scenario, workers=0).log_path


@pytest.fixture(scope="module")
def frame(drive: Path) -> Frame:
    """A frame a second in (the ego has moved, so the transforms are not identities)."""
    from bagscope.pipeline.session import auto_sync, sync_policy, truth_topics
    from bagscope.replay.log import open_log

    log = open_log([drive])
    policy = sync_policy(log, auto_sync(log, also=truth_topics(log)))
    assert policy is not None
    frames = list(log.frames(policy))
    assert len(frames) > 10
    return frames[10]


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homo = np.hstack([points, np.ones((len(points), 1))])
    return (homo @ matrix.T)[:, :3]


def test_points_are_the_finite_cloud_in_the_fixed_frame(frame: Frame) -> None:
    scene = build_scene(frame, ViewSpec(view="bev"))
    assert scene.frame_id == "odom"
    (layer,) = scene.points
    cloud = frame.clouds[CLOUD]
    assert layer.name == CLOUD
    assert len(layer.xyz) == int(cloud.finite_mask.sum())
    assert frame.tf is not None
    matrix = frame.tf.lookup("odom", cloud.frame_id, frame.stamps_ns[CLOUD])
    expected = _apply(matrix, np.asarray(cloud.xyz, np.float64)[cloud.finite_mask])
    np.testing.assert_allclose(layer.xyz, expected, atol=1e-3)
    assert not np.allclose(matrix, np.eye(4))


@pytest.mark.parametrize("color_by", ["height", "intensity", "range", "ring", "t"])
def test_colours_are_rgb_in_unit_range(frame: Frame, color_by: str) -> None:
    (layer,) = build_scene(frame, ViewSpec(view="bev", color_by=color_by)).points
    assert layer.colors.shape == layer.xyz.shape
    assert layer.colors.dtype == np.float32
    assert layer.colors.min() >= 0.0
    assert layer.colors.max() <= 1.0
    assert len(np.unique(layer.colors, axis=0)) > 5  # a ramp, not one colour


def test_unknown_colouring_names_the_fields(frame: Frame) -> None:
    with pytest.raises(ViewError, match="intensity, ring"):
        build_scene(frame, ViewSpec(view="bev", color_by="nope"))


def test_colormap_ends() -> None:
    ends = colormap(np.array([-5.0, 0.0, 1.0, 9.0]), lo=0.0, hi=1.0)
    np.testing.assert_array_equal(ends[0], ends[1])
    np.testing.assert_array_equal(ends[2], ends[3])
    assert not np.array_equal(ends[0], ends[2])


def test_truth_corners_are_the_decoded_boxes_moved_by_tf(frame: Frame) -> None:
    scene = build_scene(frame, ViewSpec(view="bev"), truth=TRUTH)
    (layer,) = scene.boxes
    assert layer.name == f"truth:{TRUTH}"
    assert layer.truth
    decoded = frame.messages[TRUTH].decode()
    assert len(layer.corners) == len(decoded) > 0
    assert frame.tf is not None
    matrix = frame.tf.lookup("odom", decoded.frame_id, decoded.stamp_ns)
    for i in range(len(decoded)):
        (cx, cy, cz), (length, width, height) = decoded.centers[i], decoded.sizes[i]
        c, s = np.cos(decoded.yaws[i]), np.sin(decoded.yaws[i])
        local = []
        for dz in (-height / 2, height / 2):
            for dx, dy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
                x, y = dx * length / 2, dy * width / 2
                local.append((cx + c * x - s * y, cy + s * x + c * y, cz + dz))
        np.testing.assert_allclose(layer.corners[i], _apply(matrix, np.array(local)), atol=1e-9)
    np.testing.assert_allclose(layer.colors, np.tile([0.2, 0.85, 0.25], (len(decoded), 1)))
    assert layer.labels[0] == f"{decoded.labels[0]} {decoded.ids[0]} 1.00"


def test_stage_boxes_coloured_by_class(frame: Frame) -> None:
    frame.outputs["det"] = Boxes.build(
        stamp_ns=frame.stamps_ns[CLOUD],
        frame_id="lidar",
        centers=[[10.0, 0.0, 0.5], [5.0, 2.0, 0.9]],
        sizes=[[4.0, 2.0, 1.5], [0.6, 0.6, 1.8]],
        yaws=[0.0, 1.0],
        labels=["car", "pedestrian"],
        scores=[0.9, 0.5],
    )
    try:
        (layer,) = build_scene(frame, ViewSpec(view="bev"), boxes=["det"]).boxes
    finally:
        del frame.outputs["det"]
    assert layer.name == "stage:det"
    assert not layer.truth
    np.testing.assert_allclose(layer.colors, [class_color("car"), class_color("pedestrian")])
    assert layer.labels == ("car 0.90", "pedestrian 0.50")


def test_stage_output_that_is_not_boxes_is_refused(frame: Frame) -> None:
    frame.outputs["x"] = 3
    try:
        with pytest.raises(ViewError, match="stage 'x' outputs int"):
            build_scene(frame, ViewSpec(view="bev"), boxes=["x"])
    finally:
        del frame.outputs["x"]


def test_missing_stage_output_is_an_empty_layer(frame: Frame) -> None:
    (layer,) = build_scene(frame, ViewSpec(view="bev"), boxes=["det"]).boxes
    assert layer.corners.shape == (0, 8, 3)


def test_ego_pose_and_trail(frame: Frame) -> None:
    scene = build_scene(frame, ViewSpec(view="chase", trail_s=0.5))
    assert frame.tf is not None
    ego = frame.tf.lookup("odom", "base_link", frame.t_ns)
    np.testing.assert_allclose(scene.ego, ego)
    (trail,) = scene.lines
    np.testing.assert_allclose(trail.points[-1], ego[:3, 3], atol=1e-9)
    start = frame.tf.lookup("odom", "base_link", frame.t_ns - 500_000_000)
    np.testing.assert_allclose(trail.points[0], start[:3, 3], atol=1e-6)
    assert {"base_link", "lidar", "camera_optical"} <= set(scene.axes[0].poses)
    assert build_scene(frame, ViewSpec(view="chase"), trail=False).lines == ()


def test_unreachable_fixed_frame_falls_back_to_the_sensor(frame: Frame) -> None:
    scene = build_scene(frame, ViewSpec(view="bev", fixed_frame="map"))
    assert scene.frame_id == "lidar"
    cloud = frame.clouds[CLOUD]
    np.testing.assert_allclose(
        scene.points[0].xyz, np.asarray(cloud.xyz)[cloud.finite_mask], atol=1e-6
    )
    assert "map" in scene.info["note"]


def test_projected_point_lands_at_the_pinhole_pixel(frame: Frame) -> None:
    scene = build_scene(frame, ViewSpec(view=f"camera:{IMAGE}"))
    (panel,) = scene.panels
    camera = frame.cameras[IMAGE]
    assert np.allclose(camera.D, 0.0)  # the simulated camera is an ideal pinhole
    assert frame.tf is not None
    world_from_lidar = frame.tf.lookup("odom", "lidar", frame.stamps_ns[CLOUD])
    camera_from_world = frame.tf.lookup(camera.frame_id, "odom", frame.stamps_ns[IMAGE])
    cloud = frame.clouds[CLOUD]
    cam = _apply(
        camera_from_world @ world_from_lidar, np.asarray(cloud.xyz, np.float64)[cloud.finite_mask]
    )
    front = cam[:, 2] > 0
    u = camera.fx * cam[:, 0] / cam[:, 2] + camera.cx
    v = camera.fy * cam[:, 1] / cam[:, 2] + camera.cy
    inside = front & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    assert panel.points_drawn == int(inside.sum()) > 100
    # the nearest point owns its pixel: its depth colour is there
    nearest = np.flatnonzero(inside)[np.argmin(cam[inside, 2])]
    color = depth_colors(np.array([cam[nearest, 2]]), max_depth=60.0)[0]
    np.testing.assert_array_equal(panel.image[int(v[nearest]), int(u[nearest])], color)
    assert panel.image.shape == (camera.height, camera.width, 3)


def test_boxes_are_drawn_into_the_panel(frame: Frame) -> None:
    plain = build_scene(frame, ViewSpec(view=f"camera:{IMAGE}")).panels[0].image
    (panel,) = build_scene(frame, ViewSpec(view=f"camera:{IMAGE}"), truth=TRUTH).panels
    assert panel.boxes_drawn > 0
    changed = np.any(panel.image != plain, axis=2)
    green = np.all(panel.image == [51, 217, 64], axis=2)  # TRUTH_COLOR * 255
    assert green.sum() > 100
    assert np.array_equal(changed, changed | green)  # every green pixel is a change
    assert changed.sum() == green.sum()  # and boxes only drew green


def test_camera_view_builds_only_that_panel(frame: Frame) -> None:
    assert [p.topic for p in build_scene(frame, ViewSpec(view="grid")).panels] == [IMAGE]
    assert len(build_scene(frame, ViewSpec(view=f"camera:{IMAGE}")).panels) == 1
    assert build_scene(frame, ViewSpec(view="grid"), panels=False).panels == ()


def test_unknown_camera_names_the_image_topics(frame: Frame) -> None:
    with pytest.raises(ViewError, match=f"image topics: {IMAGE}"):
        build_scene(frame, ViewSpec(view="camera:/front/image"))


def test_info_has_times_skews_and_counts(frame: Frame) -> None:
    scene = build_scene(
        frame, ViewSpec(view="bev"), truth=TRUTH, log_start_ns=frame.t_ns - 2_000_000_000,
        timings_ms={"det": 12.5},
    )  # fmt: skip
    info = scene.info
    assert info["t_ns"] == frame.t_ns
    assert info["since_start_s"] == pytest.approx(2.0)
    assert info["stamps"][IMAGE]["skew_ms"] == (frame.stamps_ns[IMAGE] - frame.t_ns) / 1e6
    assert info["points"][CLOUD] == len(scene.points[0].xyz)
    assert info["boxes"][f"truth:{TRUTH}"] == len(scene.boxes[0].corners)
    assert info["timings_ms"] == {"det": 12.5}
    assert any("det 12.5 ms" in line for line in info["lines"])
