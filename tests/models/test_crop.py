from __future__ import annotations

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.models.crop import Crop, crop_mask

XYZ = np.array(
    [
        [1.0, 0.0, 0.0],  # az 0, r 1
        [0.0, 3.0, -1.0],  # az 90, r 3
        [-5.0, 0.0, 2.0],  # az 180, r 5
        [0.0, -10.0, 0.5],  # az -90, r 10
        [3.0, 4.0, 9.0],  # az 53.13, r 5
    ],
    dtype=np.float32,
)


def test_ranges_are_horizontal_and_inclusive() -> None:
    np.testing.assert_array_equal(crop_mask(XYZ, max_range=5.0), [1, 1, 1, 0, 1])
    np.testing.assert_array_equal(crop_mask(XYZ, min_range=3.0), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(crop_mask(XYZ, min_range=2, max_range=5), [0, 1, 1, 0, 1])


def test_box() -> None:
    box = [-1.0, -1.0, -1.0, 3.0, 4.0, 1.0]
    np.testing.assert_array_equal(crop_mask(XYZ, box=box), [1, 1, 0, 0, 0])


def test_fov_wraps_through_180() -> None:
    np.testing.assert_array_equal(crop_mask(XYZ, fov_deg=[-45, 60]), [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(crop_mask(XYZ, fov_deg=[135, -80]), [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(crop_mask(XYZ, fov_deg=[-180, 180]), [1, 1, 1, 1, 1])


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(BagscopeError, match="max_range"):
        Crop(max_range=-1)
    with pytest.raises(BagscopeError, match="min_range"):
        Crop(min_range=5, max_range=2)
    with pytest.raises(BagscopeError, match="box"):
        Crop(box=[1, 2, 3])
    with pytest.raises(BagscopeError, match="box"):
        Crop(box=[1, 0, 0, 0, 1, 1])
    with pytest.raises(BagscopeError, match="fov_deg"):
        Crop(fov_deg=[0, "a"])  # type: ignore[list-item]
