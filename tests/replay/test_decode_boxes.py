"""Boxes: decoded from vision_msgs/Detection3DArray (both ROS versions), and their geometry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bagscope.replay.decode.boxes import Boxes, decode_detection3d_array, yaw_of_quaternion
from bagscope.replay.rotation import rpy_to_matrix
from bagscope.sim.messages import DETECTIONS, BoxTruth, MessageEncoder

STAMP = 1_700_000_000_123_456_789


def _pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rpy_to_matrix(0.0, 0.0, yaw)
    pose[:3, 3] = (x, y, z)
    return pose


TRUTH = [
    BoxTruth(track_id=1004, cls="car", pose=_pose(10.0, -2.0, -1.0, 0.3), size=(4.5, 1.8, 1.5)),
    BoxTruth(
        track_id=1007, cls="pedestrian", pose=_pose(-3.0, 4.0, -0.7, -2.0), size=(0.6, 0.6, 1.8)
    ),
]


@pytest.mark.parametrize("ros1", [False, True])
def test_the_simulators_ground_truth_decodes_exactly(ros1: bool) -> None:
    encoder = MessageEncoder(ros1=ros1)
    data = encoder.detections(TRUTH, stamp_ns=STAMP, frame_id="lidar")
    store = encoder.typestore
    msg: Any = (store.deserialize_ros1 if ros1 else store.deserialize_cdr)(data, DETECTIONS)
    boxes = decode_detection3d_array(msg)
    assert boxes.stamp_ns == STAMP
    assert boxes.frame_id == "lidar"
    assert boxes.labels == ("car", "pedestrian")
    assert boxes.ids == ("1004", "1007")
    np.testing.assert_allclose(boxes.centers, [[10.0, -2.0, -1.0], [-3.0, 4.0, -0.7]])
    np.testing.assert_allclose(boxes.sizes, [[4.5, 1.8, 1.5], [0.6, 0.6, 1.8]])
    np.testing.assert_allclose(boxes.yaws, [0.3, -2.0], atol=1e-12)
    np.testing.assert_allclose(boxes.scores, [1.0, 1.0])
    assert boxes.velocities is None


def test_yaw_of_a_quaternion() -> None:
    half = 0.25
    assert yaw_of_quaternion((0.0, 0.0, math.sin(half), math.cos(half))) == pytest.approx(0.5)
    assert yaw_of_quaternion((0.0, 0.0, 0.0, 1.0)) == 0.0


def test_footprint_corners_and_ranges() -> None:
    boxes = Boxes.build(
        stamp_ns=0,
        frame_id="f",
        centers=[[3.0, 4.0, 0.0]],
        sizes=[[4.0, 2.0, 1.0]],
        yaws=[math.pi / 2],
        labels=["car"],
    )
    np.testing.assert_allclose(
        boxes.corners_bev()[0], [[2.0, 6.0], [2.0, 2.0], [4.0, 2.0], [4.0, 6.0]], atol=1e-12
    )
    np.testing.assert_allclose(boxes.ranges(), [5.0])


def test_transformed_moves_centres_and_turns_yaws() -> None:
    boxes = Boxes.build(
        stamp_ns=0,
        frame_id="lidar",
        centers=[[1.0, 0.0, 0.0]],
        sizes=[[4.0, 2.0, 1.0]],
        yaws=[0.1],
        labels=["car"],
        velocities=[[2.0, 0.0, 0.0]],
    )
    to_odom = _pose(10.0, 5.0, 1.5, math.pi / 2)
    moved = boxes.transformed(to_odom, frame_id="odom")
    assert moved.frame_id == "odom"
    np.testing.assert_allclose(moved.centers, [[10.0, 6.0, 1.5]], atol=1e-12)
    np.testing.assert_allclose(moved.yaws, [0.1 + math.pi / 2])
    assert moved.velocities is not None
    np.testing.assert_allclose(moved.velocities, [[0.0, 2.0, 0.0]], atol=1e-12)


def test_build_refuses_ragged_fields_and_select_keeps_rows() -> None:
    with pytest.raises(ValueError, match=r"lengths \[1, 2\]"):
        Boxes.build(
            stamp_ns=0,
            frame_id="f",
            centers=np.zeros((2, 3)),
            sizes=np.ones((2, 3)),
            yaws=[0.0, 1.0],
            labels=["a"],
        )
    boxes = Boxes.build(
        stamp_ns=0,
        frame_id="f",
        centers=np.arange(9.0).reshape(3, 3),
        sizes=np.ones((3, 3)),
        yaws=[0.0, 1.0, 2.0],
        labels=["a", "b", "c"],
        ids=["1", "2", "3"],
    )
    picked = boxes.select(np.array([True, False, True]))
    assert picked.labels == ("a", "c")
    assert picked.ids == ("1", "3")
    np.testing.assert_allclose(picked.yaws, [0.0, 2.0])
    assert len(boxes.select(np.array([2]))) == 1
