"""The view spec: which views exist, and what a spec shows."""

from __future__ import annotations

import pytest

from bagscope.viz.view import ViewError, ViewSpec, parse_view


def test_views_parse_and_unknown_ones_are_one_line() -> None:
    assert [parse_view(v) for v in ("bev", "chase", "sensor", "grid")] == [
        "bev",
        "chase",
        "sensor",
        "grid",
    ]
    assert parse_view("camera:/camera/image/compressed") == "camera:/camera/image/compressed"
    with pytest.raises(ViewError) as info:
        parse_view("birdseye")
    assert str(info.value) == (
        "unknown view 'birdseye'; choose one of bev, chase, sensor, grid, camera:/TOPIC"
    )
    with pytest.raises(ViewError):
        parse_view("camera:")


def test_a_spec_shows_every_layer_it_does_not_switch_off() -> None:
    spec = ViewSpec(view="camera:/cam", layers={"/lidar/points": False})
    assert spec.camera_topic == "/cam"
    assert ViewSpec().camera_topic is None
    assert not spec.shows("/lidar/points")
    assert spec.shows("truth:/ground_truth/objects")
    assert spec.size == (1280, 720)
