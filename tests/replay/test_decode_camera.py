"""CameraInfo decoding and CameraModel projection for each ROS distortion model."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import DECODERS, CameraModel, decode_camera_info
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from pathlib import Path

CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
FX, FY, CX, CY = 500.0, 400.0, 320.0, 240.0
PLUMB_BOB = (0.1, -0.05, 0.001, 0.002, 0.01)
RATIONAL = (0.2, -0.1, 0.001, -0.002, 0.01, 0.05, -0.02, 0.005)
EQUIDISTANT = (0.05, -0.01, 0.002, -0.0005)


def opencv_pinhole(x: float, y: float, d: tuple[float, ...]) -> tuple[float, float]:
    """OpenCV's projectPoints for one normalised point, written out term by term."""
    k1, k2, p1, p2, k3, k4, k5, k6 = (*d, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)[:8]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return FX * xd + CX, FY * yd + CY


def opencv_fisheye(x: float, y: float, d: tuple[float, ...]) -> tuple[float, float]:
    """OpenCV's fisheye::projectPoints for one normalised point."""
    k1, k2, k3, k4 = d
    r = math.hypot(x, y)
    theta = math.atan(r)
    theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
    scale = theta_d / r if r > 0 else 1.0
    return FX * x * scale + CX, FY * y * scale + CY


POINTS = [(0.0, 0.0, 2.0), (0.3, -0.2, 1.5), (-1.0, 0.5, 3.0), (0.25, 0.25, 0.5)]


@pytest.mark.parametrize(
    ("model", "d", "reference"),
    [
        ("plumb_bob", PLUMB_BOB, opencv_pinhole),
        ("rational_polynomial", RATIONAL, opencv_pinhole),
        ("equidistant", EQUIDISTANT, opencv_fisheye),
        ("plumb_bob", (), opencv_pinhole),
    ],
)
def test_project_matches_hand_computed_pixels(
    model: str, d: tuple[float, ...], reference: Any
) -> None:
    camera = CameraModel.from_intrinsics(
        width=640, height=480, fx=FX, fy=FY, cx=CX, cy=CY, D=d, distortion_model=model
    )
    pixels, valid = camera.project(np.array(POINTS))
    assert pixels.shape == (4, 2)
    assert pixels.dtype == np.float64
    for (x, y, z), got in zip(POINTS, pixels, strict=True):
        np.testing.assert_allclose(got, reference(x / z, y / z, d or (0.0,) * 5), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(valid, [True, True, True, True])


def test_plumb_bob_literal_pixel() -> None:
    # x = 0.2, y = -0.1: r² = 0.05, radial = 1 + 0.1·0.05 − 0.05·0.0025 + 0.01·0.000125
    # = 1.00487625; x' = 0.20097525 + 2·0.001·(−0.02) + 0.002·(0.05 + 0.08) = 0.20119525
    # y' = −0.100487625 + 0.001·(0.05 + 0.02) + 2·0.002·(−0.02) = −0.100497625
    camera = CameraModel.from_intrinsics(
        width=640, height=480, fx=FX, fy=FY, cx=CX, cy=CY, D=PLUMB_BOB
    )
    pixels, valid = camera.project([[0.4, -0.2, 2.0]])
    np.testing.assert_allclose(pixels[0], [420.597625, 199.80095], atol=1e-9)
    assert valid[0]


def test_valid_mask_and_points_behind() -> None:
    # fx = fy = 256 keeps the pixel arithmetic exact, so the edges are tested exactly.
    camera = CameraModel.from_intrinsics(width=640, height=480, fx=256, fy=256, cx=CX, cy=CY)
    points = [
        (0.0, 0.0, 1.0),  # centre
        (0.0, 0.0, -1.0),  # behind
        (0.0, 0.0, 0.0),  # at the camera centre
        (2.0, 0.0, 1.0),  # u = 832: right of the image
        (-1.25, -0.9375, 1.0),  # u = 0, v = 0: the first pixel
        (1.25, 0.0, 1.0),  # u = 640: one past the last column
        (0.0, 0.9375, 1.0),  # v = 480: one past the last row
    ]
    pixels, valid = camera.project(points)
    np.testing.assert_array_equal(valid, [True, False, False, False, True, False, False])
    assert np.isnan(pixels[1]).all()
    assert np.isnan(pixels[2]).all()
    np.testing.assert_array_equal(pixels[3], [832.0, 240.0])
    np.testing.assert_array_equal(pixels[4], [0.0, 0.0])


def test_points_beyond_the_fold_are_not_ghosts() -> None:
    # Raspicam's real calibration: its radial polynomial peaks near r = 1.008.
    camera = CameraModel.from_intrinsics(
        width=1280,
        height=960,
        fx=1014.3431,
        fy=1011.69373,
        cx=637.246371,
        cy=469.566378,
        D=(0.157005801, -0.286270492, -5.60164774e-05, 1.58636209e-03, 0.0),
    )
    assert 0.95 < camera.max_radius < 1.05
    pixels, valid = camera.project([[1.3, 0.0, 1.0], [0.5, 0.0, 1.0]])
    assert 0 <= pixels[0, 0] < 1280  # the polynomial folds it back into the image ...
    np.testing.assert_array_equal(valid, [False, True])  # ... but it is not really there


@pytest.mark.parametrize(
    ("model", "d"),
    [
        ("plumb_bob", PLUMB_BOB),
        ("rational_polynomial", RATIONAL),
        ("equidistant", EQUIDISTANT),
        ("plumb_bob", ()),
        ("plumb_bob", (-0.3, 0.1, 0.001, -0.001, -0.02)),  # strong barrel distortion
    ],
)
def test_undistort_points_round_trip(model: str, d: tuple[float, ...]) -> None:
    camera = CameraModel.from_intrinsics(
        width=640, height=480, fx=FX, fy=FY, cx=CX, cy=CY, D=d, distortion_model=model
    )
    u, v = np.meshgrid(np.linspace(1, 638, 17), np.linspace(1, 478, 13))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)
    rays = camera.undistort_points(pixels)
    assert rays.shape == (pixels.shape[0], 3)
    assert np.isfinite(rays).all()
    np.testing.assert_array_equal(rays[:, 2], 1.0)
    back, valid = camera.project(rays * 4.0)
    np.testing.assert_allclose(back, pixels, atol=1e-6)
    assert valid.all()


def humble_info(model: str = "plumb_bob", d: tuple[float, ...] = PLUMB_BOB) -> Any:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    t = ts.types
    msg = t[CAMERA_INFO](
        header=t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam_optical"
        ),
        height=480,
        width=640,
        distortion_model=model,
        d=np.array(d, dtype=np.float64),
        k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).ravel(),
        p=np.array([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
    return ts.deserialize_cdr(ts.serialize_cdr(msg, CAMERA_INFO), CAMERA_INFO)


def test_decode_ros2_camera_info() -> None:
    camera = DECODERS[CAMERA_INFO].decode(humble_info())
    assert isinstance(camera, CameraModel)
    assert (camera.frame_id, camera.width, camera.height) == ("cam_optical", 640, 480)
    assert camera.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(camera.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    np.testing.assert_array_equal(camera.D, PLUMB_BOB)
    assert camera.P.shape == (3, 4)
    assert camera.R.shape == (3, 3)
    assert camera.is_calibrated
    assert not camera.K.flags.writeable


def test_decode_ros1_camera_info_with_upper_case_fields(tmp_path: Path) -> None:
    """A bag recorded by ROS1 names the matrices K, D, R, P; rosbags keeps those names."""
    ts = get_typestore(Stores.ROS1_NOETIC)
    t = ts.types
    msg = t[CAMERA_INFO](
        header=t["std_msgs/msg/Header"](
            seq=7, stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"
        ),
        height=480,
        width=640,
        distortion_model="plumb_bob",
        D=np.array(PLUMB_BOB),
        K=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], dtype=np.float64),
        R=np.eye(3).ravel(),
        P=np.array([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
    path = tmp_path / "info.bag"
    with Writer1(path) as writer:
        conn = writer.add_connection("/camera_info", CAMERA_INFO, typestore=ts)
        writer.write(conn, 1_000_000_002, ts.serialize_ros1(msg, CAMERA_INFO))
    with AnyReader([path]) as reader:
        ((conn, _, raw),) = list(reader.messages())
        read = reader.deserialize(raw, conn.msgtype)
    assert hasattr(read, "K")
    camera = decode_camera_info(read)
    reference = decode_camera_info(humble_info())
    for name in ("K", "D", "R", "P"):
        np.testing.assert_array_equal(getattr(camera, name), getattr(reference, name))


def test_uncalibrated_camera_info_decodes() -> None:
    camera = decode_camera_info(humble_info(model="", d=()))
    assert camera.D.shape == (0,)
    pixels, _ = camera.project([[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(pixels[0], [CX, CY])


@pytest.mark.parametrize(
    ("model", "d", "match"),
    [
        (
            "kannala_brandt8",
            (0.1, 0.0, 0.0, 0.0),
            r"unsupported distortion model 'kannala_brandt8'",
        ),
        ("", (0.1, 0.0, 0.0, 0.0, 0.0), r"distortion coefficients but distortion model ''"),
    ],
)
def test_unknown_distortion_models_raise(model: str, d: tuple[float, ...], match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_camera_info(humble_info(model=model, d=d))


def test_wrong_matrix_size_raises() -> None:
    with pytest.raises(DecodeError, match="camera K has 8 values, expected 9"):
        CameraModel(
            frame_id="c", width=1, height=1, distortion_model="plumb_bob",
            K=np.zeros(8), D=np.zeros(5), R=np.eye(3), P=np.zeros((3, 4)),
        )  # fmt: skip


def test_from_intrinsics_defaults() -> None:
    camera = CameraModel.from_intrinsics(width=10, height=8, fx=5, fy=6, cx=4.5, cy=3.5)
    np.testing.assert_array_equal(camera.R, np.eye(3))
    np.testing.assert_array_equal(camera.P, [[5, 0, 4.5, 0], [0, 6, 3.5, 0], [0, 0, 1, 0]])
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (5, 6, 4.5, 3.5)
    assert camera.max_radius == math.inf
