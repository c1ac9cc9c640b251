"""project_to_camera: exact pixels on a hand-built camera and TF, and the ground truth actors
of a simulated drive landing where the camera sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bagscope import open_log
from bagscope.errors import BagscopeError
from bagscope.models.projection import ProjectToCamera, depth_colors, overlay, project_points
from bagscope.models.records import PointSet
from bagscope.pipeline.runner import run_stages
from bagscope.pipeline.stage import StageResult
from bagscope.replay.decode import CameraModel
from bagscope.replay.frame import Frame
from bagscope.replay.sync import make_policy
from bagscope.replay.tf import TransformBuffer
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
TRUTH = "/ground_truth/objects"

# ----------------------------------------------------------------- hand-built camera and TF


def _frame_with(points: np.ndarray, camera: CameraModel, tf: TransformBuffer) -> Frame:
    class _Image:
        pixels = np.zeros((camera.height, camera.width, 3), np.uint8)

    frame = Frame(
        t_ns=1000,
        index=0,
        messages={},
        stamps_ns={"/cam": 1000},
        clouds={},
        images={"/cam": _Image()},  # type: ignore[dict-item]
        cameras={"/cam": camera},
        tf=tf.at(1000),
    )
    frame.outputs["pts"] = PointSet(
        xyz=points.astype(np.float32),
        frame_id="lidar",
        topic="/lidar",
        stamp_ns=1000,
        index=np.arange(len(points), dtype=np.int64),
    )
    return frame


def _lidar_to_optical() -> TransformBuffer:
    """The usual mount: optical z = lidar x (forward), optical x = -lidar y, optical y = -lidar
    z, the camera 0.5 m above the lidar."""
    tf = TransformBuffer()
    # (x, y, z, w) of the rotation taking optical axes to lidar ones (ROS optical convention)
    tf.add("lidar", "camera_optical", 0, (0.0, 0.0, 0.5), (-0.5, 0.5, -0.5, 0.5), static=True)
    return tf


def test_exact_pixels_through_tf() -> None:
    camera = CameraModel.from_intrinsics(
        width=640, height=480, fx=500, fy=400, cx=320.5, cy=240.25, frame_id="camera_optical"
    )
    tf = _lidar_to_optical()
    # In the optical frame: (0, 0, 10) -> centre; (1, -0.5, 5) -> (cx + fx/5, cy - fy/10).
    # Lidar coordinates of those: x = z_opt, y = -x_opt, z = -y_opt + 0.5.
    points = np.array([[10.0, 0.0, 0.5], [5.0, -1.0, 1.0], [-5.0, 0.0, 0.5], [1.0, -50.0, 0.5]])
    stage = ProjectToCamera(input="pts")
    (proj,) = stage.process(_frame_with(points, camera, tf)).values()
    assert proj.index.tolist() == [0, 1]  # behind the camera and outside the image: left out
    np.testing.assert_allclose(proj.pixels[0], [320.5, 240.25], atol=1e-9)
    np.testing.assert_allclose(proj.pixels[1], [320.5 + 500 / 5, 240.25 - 400 * 0.5 / 5], atol=1e-9)
    np.testing.assert_allclose(proj.depth, [10.0, 5.0], atol=1e-9)
    assert (proj.width, proj.height) == (640, 480)
    near = ProjectToCamera(input="pts", max_depth=7.0).process(_frame_with(points, camera, tf))
    assert near["/cam"].index.tolist() == [1]


def test_distortion_comes_from_the_camera_model() -> None:
    d = [0.1, -0.05, 0.001, 0.002, 0.0]
    camera = CameraModel.from_intrinsics(
        width=640, height=480, fx=500, fy=500, cx=320, cy=240, D=d, frame_id="camera_optical"
    )
    pts_opt = np.array([[1.0, 0.5, 4.0]])
    proj = project_points(pts_opt, matrix=np.eye(4), camera=camera, topic="/cam")
    x, y = 0.25, 0.125
    r2 = x * x + y * y
    radial = 1 + 0.1 * r2 - 0.05 * r2 * r2
    xd = x * radial + 2 * 0.001 * x * y + 0.002 * (r2 + 2 * x * x)
    yd = y * radial + 0.001 * (r2 + 2 * y * y) + 2 * 0.002 * x * y
    np.testing.assert_allclose(proj.pixels[0], [500 * xd + 320, 500 * yd + 240], atol=1e-9)


def test_overlay_colours_nearest_point() -> None:
    camera = CameraModel.from_intrinsics(
        width=64, height=48, fx=50, fy=50, cx=32, cy=24, frame_id="camera_optical"
    )
    tf = _lidar_to_optical()
    # two points on the same pixel (the centre), one near and one far, and one far elsewhere
    points = np.array([[2.0, 0.0, 0.5], [40.0, 0.0, 0.5], [40.0, -8.0, 0.5]])
    frame = _frame_with(points, camera, tf)
    (proj,) = ProjectToCamera(input="pts").process(frame).values()
    image = overlay(frame, proj, max_depth=40.0)
    assert image.shape == (48, 64, 3)
    assert image.dtype == np.uint8
    colors = depth_colors(np.array([2.0, 40.0]), max_depth=40.0)
    assert image[24, 32].tolist() == colors[0].tolist()  # the near point wins its pixel
    assert image[24, 42].tolist() == colors[1].tolist()
    assert int(image.sum()) == int(colors[0].sum() + colors[1].sum())
    big = overlay(frame, proj, radius=2, max_depth=40.0)
    assert (big[23:26, 31:34] == colors[0]).all()
    # near is red-ish, far is blue-ish
    assert colors[0][0] > colors[0][2]
    assert colors[1][2] > colors[1][0]


def test_bad_parameters() -> None:
    with pytest.raises(BagscopeError, match="max_depth"):
        ProjectToCamera(max_depth=-1)
    with pytest.raises(BagscopeError, match="images"):
        ProjectToCamera(images="/cam")  # type: ignore[arg-type]


# ----------------------------------------------------------------- simulated drive


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("projection") / "urban.mcap"
    scenario = make_scenario(
        "urban", seed=7, duration_ns=2_000_000_000, beams=32, camera_size=(320, 180)
    )
    simulate(out, scenario=scenario, workers=0)
    return out


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def process(self, frame: Frame) -> None:
        truth = frame.messages[TRUTH].decode()
        proj = frame.outputs["project_to_camera"]
        cloud = frame.clouds[LIDAR]
        self.rows.append((frame, truth, proj, cloud.xyz[cloud.finite_mask].copy()))

    def finish(self) -> StageResult:
        return StageResult()


def test_simulated_actors_land_on_their_pixels(drive: Path) -> None:
    """Every projected point matches the pinhole formula through TF, and the lidar returns
    inside each ground truth box land inside the image region its projected corners span."""
    collect = _Collect()
    stage = ProjectToCamera()
    with open_log(drive) as log:
        result = run_stages(
            log,
            [stage, collect],
            sync=make_policy("nearest", [LIDAR, CAMERA, TRUTH], slop_ns=50_000_000),
            fail_fast=True,
        )
    assert len(collect.rows) >= 15
    checked = 0
    for frame, truth, proj, xyz in collect.rows:
        p = proj[CAMERA]
        camera = frame.cameras[CAMERA]
        assert len(p.depth) > 1000
        assert (p.pixels[:, 0] >= 0).all()
        assert (p.pixels[:, 0] < camera.width).all()
        assert (p.pixels[:, 1] < camera.height).all()
        # Every projected point re-derived by hand: out to odom at the sweep's stamp, into
        # the camera at the image's (7 ms later: 8 cm of ego motion at this speed).
        odom_from_lidar = frame.tf.lookup("odom", "lidar", frame.stamps_ns[LIDAR])
        cam_from_odom = frame.tf.lookup(camera.frame_id, "odom", frame.stamps_ns[CAMERA])
        cam_from_lidar = cam_from_odom @ odom_from_lidar
        xyz_cam = xyz[p.index] @ cam_from_lidar[:3, :3].T + cam_from_lidar[:3, 3]
        np.testing.assert_allclose(p.depth, xyz_cam[:, 2], atol=1e-4)
        uv = xyz_cam[:, :2] / xyz_cam[:, 2:] @ np.diag([camera.fx, camera.fy]) + [
            camera.cx,
            camera.cy,
        ]
        np.testing.assert_allclose(p.pixels, uv, atol=1e-3)
        for k in range(len(truth)):
            center, size, yaw = truth.centers[k], truth.sizes[k], truth.yaws[k]
            rel = xyz[p.index] - center
            c, s = np.cos(-yaw), np.sin(-yaw)
            local = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], 1)
            inside = (np.abs(local) <= size[:2] / 2 + 0.05).all(1) & (
                np.abs(rel[:, 2]) <= size[2] / 2 + 0.05
            )
            if inside.sum() < 5:
                continue
            # the box's 8 corners, projected, bound the actor's region in the image
            corners = np.array(
                [
                    [sx * size[0] / 2, sy * size[1] / 2, sz * size[2] / 2]
                    for sx in (-1, 1)
                    for sy in (-1, 1)
                    for sz in (-1, 1)
                ]
            )
            rot = np.array(
                [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
            )
            world = corners @ rot.T + center
            corners_cam = world @ cam_from_lidar[:3, :3].T + cam_from_lidar[:3, 3]
            if (corners_cam[:, 2] <= 0.5).any():
                continue
            uv = camera.K[:2, :2] @ (corners_cam[:, :2] / corners_cam[:, 2:]).T
            uv = uv.T + camera.K[:2, 2]
            lo, hi = uv.min(0) - 2, uv.max(0) + 2
            pix = p.pixels[inside]
            assert ((pix >= lo) & (pix <= hi)).all(), (truth.ids[k], lo, hi, pix)
            checked += 1
    assert checked >= 20
    res = result.results[stage.name]
    (check,) = res.checks
    assert check.status == "pass"
    times, counts = res.metrics.series("points_in_image", topic=CAMERA)
    assert len(times) == len(collect.rows)
    assert min(counts) > 1000
