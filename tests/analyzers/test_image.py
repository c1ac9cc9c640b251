"""ImageQuality: brightness, clipping, sharpness and damage of every camera topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope.analyzers.image import ImageQuality
from bagscope.errors import BagscopeError
from tests.analyzers._drives import (
    CAMERA,
    SCENARIOS,
    clean_drive,
    damaged_drive,
    draw_figures,
    fault,
    problems,
    real_logs,
    run,
    showcase_drive,
    times_by_stamp,
)
from tests.logwriter import T0, LogSpec, header, jpeg, write_log

if TYPE_CHECKING:
    from pathlib import Path

FRAME_NS = 33_333_333
FISHEYE = "/fisheye/image_raw"
DEPTH = "/depth/image_raw"


def _texture(seed: int, shape: tuple[int, int] = (180, 320)) -> np.ndarray:
    """A street-like grey texture: 8-pixel cells of random brightness, plus sensor noise."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 210, size=(shape[0] // 8 + 1, shape[1] // 8 + 1))
    grey = np.kron(cells, np.ones((8, 8)))[: shape[0], : shape[1]]
    grey = grey + rng.normal(0.0, 4.0, size=shape)
    return np.clip(grey, 0, 255).astype(np.uint8)


def _blurred(grey: np.ndarray, width: int = 21) -> np.ndarray:
    """A box blur along both axes (defocus)."""
    kernel = np.ones(width) / width
    out = grey.astype(np.float64)
    out = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, out)
    out = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, out)
    return np.clip(out, 0, 255).astype(np.uint8)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _camera_frames() -> list[np.ndarray]:
    """30 frames: 8-9 black, 12 burnt out, 16-18 out of focus, 22-24 repeating frame 21 (the
    freeze analyzer's finding, not this one's)."""
    frames = [_texture(seed=k) for k in range(30)]
    frames[8] = np.full((180, 320), 2, dtype=np.uint8)
    frames[9] = np.full((180, 320), 1, dtype=np.uint8)
    frames[12] = np.full((180, 320), 255, dtype=np.uint8)
    for k in (16, 17, 18):
        frames[k] = _blurred(frames[k])
    for k in (22, 23, 24):
        frames[k] = frames[21]
    return frames


def _truncated(ts: Any, stamp: int, grey: np.ndarray) -> Any:
    msg = jpeg(ts, stamp, _rgb(grey))
    msg.data = msg.data[: len(msg.data) // 2]
    return msg


def _camera_log(path: Path) -> Path:
    spec = LogSpec()
    for k, grey in enumerate(_camera_frames()):
        stamp = T0 + k * FRAME_NS
        build = _truncated if k == 27 else lambda ts, s, g: jpeg(ts, s, _rgb(g))
        spec.add(
            CAMERA,
            "sensor_msgs/msg/CompressedImage",
            stamp + 1_000_000,
            lambda ts, s=stamp, g=grey, b=build: b(ts, s, g),
        )
    return write_log(path, spec, "mcap")


def _image(ts: Any, stamp: int, pixels: np.ndarray, encoding: str) -> Any:
    data = np.ascontiguousarray(pixels)
    return ts.types["sensor_msgs/msg/Image"](
        header=header(ts, stamp, "fisheye"),
        height=data.shape[0],
        width=data.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=data.shape[1] * data.itemsize,
        data=np.frombuffer(data.tobytes(), dtype=np.uint8),
    )


def _fisheye_frames() -> list[np.ndarray]:
    """20 mono8 frames: a lit circle (38 % of the image) inside a black border (0); frame 15 is
    dark inside the circle too."""
    yy, xx = np.mgrid[:200, :200]
    outside = (yy - 100) ** 2 + (xx - 100) ** 2 > 70**2
    frames = []
    for k in range(20):
        grey = _texture(seed=100 + k, shape=(200, 200))
        if k == 15:
            grey = (grey // 60).astype(np.uint8)  # 0..3: the lens sees nothing
        grey[outside] = 0
        frames.append(grey)
    return frames


def _raw_log(path: Path) -> Path:
    spec = LogSpec()
    for k, grey in enumerate(_fisheye_frames()):
        stamp = T0 + k * FRAME_NS
        spec.add(
            FISHEYE,
            "sensor_msgs/msg/Image",
            stamp,
            lambda ts, s=stamp, g=grey: _image(ts, s, g, "mono8"),
        )
        depth = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) + k).astype(np.uint16)
        spec.add(
            DEPTH,
            "sensor_msgs/msg/Image",
            stamp,
            lambda ts, s=stamp, d=depth: _image(ts, s, d, "16UC1"),
        )
    return write_log(path, spec, "bag")


def _analyse(log: Path, **kwargs: Any) -> Any:
    return run(log, [ImageQuality(**kwargs)], topics=None).results["image"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_have_healthy_frames(scenario: str) -> None:
    result = _analyse(clean_drive(scenario))
    assert problems(result) == []
    assert {c.status for c in result.checks} == {"pass"}
    times, brightness = result.metrics.series("brightness", topic=CAMERA)
    assert len(times) == 90
    assert all(30 < b < 220 for b in brightness)
    assert result.metrics.value("frames", topic=CAMERA) == 90
    assert draw_figures(result) == 1


def test_exposure_blur_and_damage_are_found(tmp_path: Path) -> None:
    result = _analyse(_camera_log(tmp_path / "camera"))
    found = [(e.kind, e.t_ns, e.end_ns, e.severity) for e in problems(result)]
    at = [T0 + k * FRAME_NS + 1_000_000 for k in range(30)]
    assert sorted(found) == sorted(
        [
            ("corrupt", at[27], at[27], "error"),
            ("underexposed", at[8], at[9], "warning"),
            ("overexposed", at[12], at[12], "warning"),
            ("blurry", at[16], at[18], "warning"),
        ]
    )  # frames 22-24 repeating frame 21: the freeze analyzer's, not reported here too
    by_kind = {e.kind: e for e in result.events}
    assert by_kind["underexposed"].evidence["worst_share"] == 1.0
    assert by_kind["underexposed"].evidence["frames"] == 2
    assert by_kind["overexposed"].evidence["worst_share"] == 1.0
    assert by_kind["blurry"].evidence["frames"] == 3
    assert by_kind["blurry"].evidence["worst_laplacian_var"] < (
        0.25 * by_kind["blurry"].evidence["median_laplacian_var"]
    )
    assert by_kind["corrupt"].evidence["corrupt"] == 1
    assert "no end-of-image marker" in by_kind["corrupt"].message
    assert draw_figures(result) == 1


def test_a_fisheye_border_is_not_underexposure(tmp_path: Path) -> None:
    # 62 % of each fisheye frame is the black border: the optics, not the exposure. Only frame
    # 15, dark inside the lens too, is underexposed.
    result = _analyse(_raw_log(tmp_path / "fisheye.bag"))
    (event,) = problems(result)
    assert event.kind == "underexposed"
    assert event.topic == FISHEYE
    assert event.t_ns == event.end_ns == T0 + 15 * FRAME_NS
    assert event.evidence["worst_share"] == 1.0
    shares = result.metrics.series("dark_fraction", topic=FISHEYE)[1]
    assert max(shares[:15] + shares[16:]) == 0.0
    statuses = {(c.name, c.topic): c.status for c in result.checks}
    assert statuses[("exposure", FISHEYE)] == "warn"
    assert statuses[("sharpness", FISHEYE)] == "pass"
    # 16-bit depth has no exposure to judge
    assert statuses[("exposure", DEPTH)] == "skip"
    assert statuses[("sharpness", DEPTH)] == "skip"


def test_an_encoding_bagscope_cannot_read_is_not_corruption(tmp_path: Path) -> None:
    spec = LogSpec()
    for k in range(3):
        stamp = T0 + k * FRAME_NS
        grey = _texture(seed=k, shape=(48, 64))
        spec.add(
            FISHEYE,
            "sensor_msgs/msg/Image",
            stamp,
            lambda ts, s=stamp, g=grey: _image(ts, s, g, "nv21"),
        )
    result = _analyse(write_log(tmp_path / "nv21", spec, "mcap"))
    assert result.events == []
    statuses = {c.name: (c.status, c.value) for c in result.checks}
    assert statuses["decodable"][0] == "pass"
    assert statuses["exposure"][0] == "skip"
    assert "unsupported image encoding 'nv21'" in statuses["exposure"][1]


def test_a_frozen_camera_is_left_to_the_freeze_analyzer() -> None:
    # freeze:/camera/image/compressed=2s+1s: the 30 frames stamped in [2 s, 3 s) repeat the
    # image of 1.974 s; that is the freeze analyzer's finding (tests/analyzers/test_freeze.py)
    result = _analyse(showcase_drive())
    assert problems(result) == []
    assert {c.name for c in result.checks} == {"decodable", "exposure", "sharpness"}


def test_corrupt_images_are_counted() -> None:
    log = damaged_drive()
    record = fault(log, "corrupt:/camera/image/compressed=0.2")
    result = _analyse(log)
    (event,) = problems(result)
    assert (event.kind, event.severity, event.topic) == ("corrupt", "error", CAMERA)
    assert event.evidence["corrupt"] == record["count"]
    log_time = times_by_stamp(log, CAMERA)
    assert event.evidence["times_ns"] == sorted(log_time[s] for s in record["stamps_ns"])


def test_a_480x270_jpeg_costs_well_under_a_millisecond(tmp_path: Path) -> None:
    spec = LogSpec()
    for k in range(30):
        stamp = T0 + k * FRAME_NS
        grey = _texture(seed=k, shape=(270, 480))
        spec.add(
            CAMERA,
            "sensor_msgs/msg/CompressedImage",
            stamp,
            lambda ts, s=stamp, g=grey: jpeg(ts, s, _rgb(g)),
        )
    result = run(write_log(tmp_path / "big", spec, "mcap"), [ImageQuality()], topics=None)
    per_frame_ms = result.timings.messages["image"] / 30 / 1e6
    assert per_frame_ms < 5.0  # ~0.3-0.5 ms on an idle core; generous for a loaded machine
    assert problems(result.results["image"]) == []


@pytest.mark.parametrize(
    "kwargs", [{"max_clipped": 0}, {"max_clipped": 1}, {"blur_ratio": 0}, {"blur_ratio": 1.5}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BagscopeError, match=next(iter(kwargs))):
        ImageQuality(**kwargs)


def test_real_logs_are_clean(shared_data: Path) -> None:
    for path in real_logs(shared_data):
        result = _analyse(path)
        assert problems(result) == [], path.name
    # The T265's fisheyes (3 frames each: too few for a sharpness baseline) are exposed fine:
    # their border sits at the sensor's black level (~16), and the ceiling lights clip 9 %.
    result = _analyse(shared_data / "ros1" / "realsense_t265_fisheye.bag")
    statuses = {(c.name, c.topic): c.status for c in result.checks}
    assert statuses[("exposure", "/camera/fisheye1/image_raw")] == "pass"
    assert statuses[("sharpness", "/camera/fisheye1/image_raw")] == "skip"
    bright = result.metrics.value("bright_fraction_median", topic="/camera/fisheye1/image_raw")
    assert 0.05 < bright < 0.15
