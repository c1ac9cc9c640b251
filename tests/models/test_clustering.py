from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.models.clustering import Clustering, classify

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray


def _faces(
    center: tuple[float, float], yaw_deg: float, size: tuple[float, float, float], faces: str
) -> NDArray[np.float32]:
    """Points 0.1 m apart on the named vertical faces of a box standing on z = -1.6 (the
    lowest 0.2 m above the ground at -1.8 already removed): ``f``/``b`` ends (x = +-l/2),
    ``l``/``r`` sides (y = +-w/2)."""
    length, width, height = size
    hs = np.arange(0.0, height - 0.2 + 1e-9, 0.1)
    pts: list[tuple[float, float, float]] = []
    for face in faces:
        if face in "fb":
            x = length / 2 if face == "f" else -length / 2
            pts += [(x, w, h) for w in np.arange(-width / 2, width / 2 + 1e-9, 0.1) for h in hs]
        else:
            y = width / 2 if face == "l" else -width / 2
            pts += [(u, y, h) for u in np.arange(-length / 2, length / 2 + 1e-9, 0.1) for h in hs]
    arr = np.asarray(pts)
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    xy = arr[:, :2] @ np.array([[c, s], [-s, c]]) + center
    return np.column_stack([xy, arr[:, 2] - 1.6]).astype(np.float32)


def _detect(xyz: NDArray[np.float32], **kw: Any) -> Any:
    return Clustering(**kw).detect(xyz, stamp_ns=5, frame_id="lidar")


def _yaw_error_deg(a: float, b: float) -> float:
    return abs(math.degrees((a - b + math.pi / 2) % math.pi - math.pi / 2))


def test_two_boxes_sizes_yaws_and_classes() -> None:
    # a car seen at a corner (L-shape: its rear and right side), a van seen at another corner
    car = _faces((12.0, 6.0), 30.0, (4.5, 1.85, 1.5), "br")
    van = _faces((-10.0, -8.0), -50.0, (5.1, 2.0, 2.1), "fl")
    person = _faces((5.0, -2.0), 0.0, (0.5, 0.5, 1.75), "fblr")
    boxes = _detect(np.concatenate([car, van, person]), complete=False)
    assert len(boxes) == 3
    assert (boxes.stamp_ns, boxes.frame_id) == (5, "lidar")
    order = np.argsort(boxes.centers[:, 0])  # van, person, car
    labels = [boxes.labels[i] for i in order]
    assert labels == ["van", "pedestrian", "car"]
    van_i, _, car_i = order
    np.testing.assert_allclose(boxes.centers[car_i, :2], (12.0, 6.0), atol=0.05)
    np.testing.assert_allclose(boxes.sizes[car_i, :2], (4.5, 1.85), atol=0.06)
    assert boxes.sizes[car_i, 2] == pytest.approx(1.3, abs=0.06)
    assert _yaw_error_deg(boxes.yaws[car_i], math.radians(30)) < 1.0
    np.testing.assert_allclose(boxes.centers[van_i, :2], (-10.0, -8.0), atol=0.05)
    np.testing.assert_allclose(boxes.sizes[van_i, :2], (5.1, 2.0), atol=0.06)
    assert _yaw_error_deg(boxes.yaws[van_i], math.radians(-50)) < 1.0
    assert all(0 < s <= 1 for s in boxes.scores)


def test_a_car_seen_from_behind_is_grown_away_from_the_sensor() -> None:
    # a car 10 m ahead, heading away: only its rear face (1.85 m wide) shows
    rear_only = _faces((12.0, 0.0), 0.0, (4.5, 1.85, 1.5), "b")
    boxes = _detect(rear_only)
    assert boxes.labels == ("car",)
    np.testing.assert_allclose(boxes.centers[0, :2], (12.0, 0.0), atol=0.1)
    np.testing.assert_allclose(boxes.sizes[0, :2], (4.5, 1.85), atol=0.06)
    assert _yaw_error_deg(boxes.yaws[0], 0.0) < 1.0


def test_walls_poles_and_kerbs_are_not_objects() -> None:
    wall = _faces((0.0, 15.0), 0.0, (30.0, 0.3, 8.0), "r")
    pole = _faces((8.0, -5.0), 0.0, (0.25, 0.25, 7.0), "fblr")
    kerb = _faces((5.0, 5.0), 0.0, (6.0, 0.3, 0.5), "r")
    assert len(_detect(np.concatenate([wall, pole, kerb]))) == 0
    assert len(_detect(kerb, keep_unknown=True, min_height=0.2)) == 1


def test_classify_rules() -> None:
    assert classify(4.4, 1.8, 1.3, face_on=False) == "car"
    assert classify(0.6, 0.5, 1.55, face_on=False) == "pedestrian"
    assert classify(1.8, 0.3, 1.5, face_on=False) == "cyclist"
    assert classify(1.8, 0.1, 1.3, face_on=True) == "car"
    assert classify(11.8, 2.5, 3.0, face_on=False) == "bus"
    assert classify(8.0, 2.4, 3.1, face_on=False) == "truck"
    assert classify(3.0, 0.3, 0.6, face_on=False) == ""


def test_bad_parameters() -> None:
    with pytest.raises(BagscopeError, match="eps"):
        Clustering(eps=0)
    with pytest.raises(BagscopeError, match="min_points"):
        Clustering(min_points=2.5)  # type: ignore[arg-type]
    with pytest.raises(BagscopeError, match="max_height"):
        Clustering(min_height=3, max_height=2)


def test_default_pipeline_finds_the_cars_of_a_simulated_drive(urban_drive_32: Path) -> None:
    """voxel -> ground -> clustering on a simulated street: cars (and vans) within 20 m of
    the sensor are found within 1.5 m of their true centre."""
    from bagscope.models.ground import GroundSegmentation
    from bagscope.models.voxel import VoxelDownsample
    from bagscope.pipeline.runner import run_stages
    from bagscope.pipeline.stage import StageResult
    from bagscope.replay.log import open_log
    from bagscope.replay.sync import make_policy

    class Score:
        name = "score"
        found = total = false = detections = 0

        def process(self, frame: Any) -> None:
            truth = frame.messages["/ground_truth/objects"].decode()
            boxes = frame.outputs["clustering"]
            assert boxes.frame_id == truth.frame_id == "lidar"
            assert boxes.stamp_ns == frame.stamps_ns["/lidar/points"]
            cars = truth.select(
                np.array([lab in {"car", "van"} for lab in truth.labels], dtype=bool)
                & (truth.ranges() < 20)
            )
            near = boxes.select(boxes.ranges() < 20)
            self.total += len(cars)
            self.detections += len(near)
            if len(cars) and len(near):
                d = np.linalg.norm(cars.centers[:, None, :2] - near.centers[None, :, :2], axis=2)
                self.found += int((d.min(axis=1) < 1.5).sum())
            if len(near):
                d = np.linalg.norm(near.centers[:, None, :2] - truth.centers[None, :, :2], axis=2)
                self.false += int((d.min(axis=1) > 1.5).sum()) if len(truth) else len(near)

        def finish(self) -> StageResult:
            return StageResult()

    score = Score()
    stages: list[Any] = [
        VoxelDownsample(voxel=0.2),
        GroundSegmentation(input="voxel_downsample"),
        Clustering(),
        score,
    ]
    with open_log(urban_drive_32) as log:
        policy = make_policy(
            "nearest", ["/lidar/points", "/ground_truth/objects"], slop_ns=20_000_000
        )
        result = run_stages(log, stages, sync=policy)
    assert not result.errors, result.errors
    print(f"found {score.found}/{score.total}; {score.false}/{score.detections} unmatched")
    assert score.total > 30
    assert score.found / score.total >= 0.75  # measured 181/223 = 0.81 (seed 3, 32 beams)
    assert score.false / score.detections <= 0.45  # measured 184/472 = 0.39
    assert result.results["clustering"].checks[0].status == "pass"
