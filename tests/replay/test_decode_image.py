"""sensor_msgs/Image decoding: every encoding, step padding, byte order, Bayer, YUV, laziness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import DECODERS, CameraImage, decode_image
from bagscope.replay.decode.colour import demosaic_bilinear
from bagscope.replay.errors import DecodeError

TS = get_typestore(Stores.ROS2_HUMBLE)
IMAGE = "sensor_msgs/msg/Image"
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
Image = TS.types[IMAGE]


def make_image(
    array: np.ndarray,
    encoding: str,
    *,
    pad: int = 0,
    bigendian: bool = False,
    step: int | None = None,
    data: bytes | None = None,
    width: int | None = None,
) -> Any:
    """An Image message whose rows are ``array``'s rows plus ``pad`` junk bytes, after CDR."""
    height = array.shape[0]
    width = array.shape[1] if width is None else width
    if bigendian:
        array = array.astype(array.dtype.newbyteorder(">"))
    rows = [array[r].tobytes() + b"\xab" * pad for r in range(height)]
    row_bytes = len(rows[0]) if rows else 0
    msg = Image(
        header=Header(stamp=Time(sec=42, nanosec=7), frame_id="camera"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=row_bytes if step is None else step,
        data=np.frombuffer(b"".join(rows) if data is None else data, dtype=np.uint8),
    )
    return TS.deserialize_cdr(TS.serialize_cdr(msg, IMAGE), IMAGE)


def rng_image(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def test_rgb8_is_a_zero_copy_view_and_lazy() -> None:
    array = rng_image((4, 6, 3), "u1")
    msg = make_image(array, "rgb8")
    image = decode_image(msg)
    assert isinstance(image, CameraImage)
    assert (image.stamp_ns, image.frame_id) == (42_000_000_007, "camera")
    assert (image.width, image.height, image.encoding) == (6, 4, "rgb8")
    assert not image.compressed
    assert not image.is_decoded
    pixels = image.pixels
    assert image.is_decoded
    assert image.pixels is pixels
    assert not pixels.flags.writeable
    np.testing.assert_array_equal(pixels, array)
    assert np.shares_memory(pixels, msg.data)
    assert DECODERS[IMAGE].decode is decode_image


# encoding, stored dtype, channels, how pixels relate to the stored array
CASES = [
    ("rgb8", "u1", 3, lambda a: a),
    ("rgba8", "u1", 4, lambda a: a),
    ("bgr8", "u1", 3, lambda a: a[..., ::-1]),
    ("bgra8", "u1", 4, lambda a: a[..., [2, 1, 0, 3]]),
    ("rgb16", "u2", 3, lambda a: a),
    ("bgr16", "u2", 3, lambda a: a[..., ::-1]),
    ("mono8", "u1", 1, lambda a: a[..., 0]),
    ("mono16", "u2", 1, lambda a: a[..., 0]),
    ("8UC1", "u1", 1, lambda a: a[..., 0]),
    ("8UC3", "u1", 3, lambda a: a),
    ("8UC4", "u1", 4, lambda a: a),
    ("16UC1", "u2", 1, lambda a: a[..., 0]),
    ("16SC1", "i2", 1, lambda a: a[..., 0]),
    ("32FC1", "f4", 1, lambda a: a[..., 0]),
    ("64FC1", "f8", 1, lambda a: a[..., 0]),
]


@pytest.mark.parametrize(("encoding", "code", "channels", "expected"), CASES)
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("bigendian", [False, True])
def test_encodings_with_padding_and_byte_order(
    encoding: str, code: str, channels: int, expected: Any, pad: int, bigendian: bool
) -> None:
    array = rng_image((3, 5, channels), code)
    image = decode_image(make_image(array, encoding, pad=pad, bigendian=bigendian))
    pixels = image.pixels
    want = expected(array)
    assert pixels.shape == want.shape
    assert pixels.dtype == np.dtype(code)  # native order whatever the source
    assert pixels.flags.c_contiguous
    np.testing.assert_array_equal(pixels, want)


def test_depth_keeps_nan_and_negative_values() -> None:
    depth = np.array([[1.5, np.nan], [-0.0, 1e6]], dtype=np.float32)
    pixels = decode_image(make_image(depth[..., None], "32FC1", bigendian=True)).pixels
    np.testing.assert_array_equal(pixels, depth)
    signed = np.array([[-32768, -1], [0, 32767]], dtype=np.int16)
    np.testing.assert_array_equal(decode_image(make_image(signed, "16SC1")).pixels, signed)


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer filter with ``pattern``'s top-left 2×2 cell."""
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for index, colour in enumerate(pattern):
        r, c = divmod(index, 2)
        out[r::2, c::2] = rgb[r::2, c::2, "rgb".index(colour)]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize(("bits", "colour"), [(8, (200, 100, 50)), (16, (60000, 1000, 30))])
def test_bayer_constant_colour_demosaics_to_that_colour(
    pattern: str, bits: int, colour: tuple[int, int, int]
) -> None:
    dtype = np.uint8 if bits == 8 else np.uint16
    for shape in ((6, 8), (5, 7), (1, 4), (3, 1)):  # odd and degenerate sizes too
        rgb = np.empty((*shape, 3), dtype=dtype)
        rgb[...] = colour
        raw = mosaic(rgb, pattern)
        image = decode_image(make_image(raw, f"bayer_{pattern}{bits}", pad=3))
        assert image.pixels.shape == (*shape, 3)
        assert image.pixels.dtype == dtype
        if min(shape) > 1:  # a single row or column lacks a colour: only check it decodes
            np.testing.assert_array_equal(image.pixels, rgb)


def test_bayer_bilinear_interpolates_neighbours() -> None:
    raw = np.array(
        [
            [10, 20, 30, 40],
            [50, 60, 70, 80],
            [90, 100, 110, 120],
            [130, 140, 150, 160],
        ],
        dtype=np.uint8,
    )
    rgb = demosaic_bilinear(raw, pattern="rggb")
    # (1, 1) is a blue site: R from 4 diagonals, G from 4 edge neighbours, B its own.
    np.testing.assert_array_equal(
        rgb[1, 1], [(10 + 30 + 90 + 110) / 4, (20 + 50 + 70 + 100) / 4, 60]
    )
    # (1, 2) is a green site in a blue row: R above/below, B left/right.
    np.testing.assert_array_equal(rgb[1, 2], [(30 + 110) / 2, 70, (60 + 80) / 2])
    # (0, 0) is a red corner: G from its two neighbours, B from its one diagonal.
    np.testing.assert_array_equal(rgb[0, 0], [10, (20 + 50) / 2, 60])


# BT.601 video-range YUV of known colours, and the RGB they stand for.
YUV_COLOURS = [
    ((16, 128, 128), (0, 0, 0)),
    ((235, 128, 128), (255, 255, 255)),
    ((81, 90, 240), (255, 0, 0)),
    ((145, 54, 34), (0, 255, 0)),
    ((41, 240, 110), (0, 0, 255)),
    ((126, 128, 128), (128, 128, 128)),
]


@pytest.mark.parametrize(
    ("encoding", "order"),
    [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")],
)
def test_yuv422_known_colours(encoding: str, order: str) -> None:
    # One pixel pair per colour, one colour per row.
    packed = np.empty((len(YUV_COLOURS), 4), dtype=np.uint8)
    for row, ((y, u, v), _) in enumerate(YUV_COLOURS):
        packed[row] = [u, y, v, y] if order == "uyvy" else [y, u, y, v]
    image = decode_image(make_image(packed.reshape(-1, 2, 2), encoding, pad=4))
    pixels = image.pixels
    assert pixels.shape == (len(YUV_COLOURS), 2, 3)
    want = np.array([[rgb, rgb] for _, rgb in YUV_COLOURS])
    np.testing.assert_allclose(pixels.astype(int), want, atol=2)


def test_yuv422_pair_shares_chroma_but_not_luma() -> None:
    packed = np.array([[[128, 16], [128, 235]]], dtype=np.uint8)  # UYVY: black then white
    pixels = decode_image(make_image(packed, "yuv422")).pixels
    np.testing.assert_array_equal(pixels[0], [[0, 0, 0], [255, 255, 255]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"encoding": "hsv8"}, r"unsupported image encoding 'hsv8'"),
        ({"encoding": "32UC1"}, r"unsupported image encoding '32UC1'"),
        ({"step": 8}, r"step 8 < width 4 × 3 bytes per pixel"),
        ({"data": b"\x00" * 30}, r"data has 30 bytes, expected step 12 × height 3 = 36"),
        ({"encoding": "yuv422", "width": 3, "step": 12}, r"width 3 is odd"),
    ],
)
def test_corrupt_messages_fail_eagerly(kwargs: dict[str, Any], match: str) -> None:
    encoding = kwargs.pop("encoding", "rgb8")
    msg = make_image(np.zeros((3, 4, 3), dtype=np.uint8), encoding, **kwargs)
    with pytest.raises(DecodeError, match=match):
        decode_image(msg)


def test_extra_trailing_bytes_are_tolerated() -> None:
    array = rng_image((2, 3), "u1")
    data = array.tobytes() + b"\x00" * 7
    pixels = decode_image(make_image(array, "mono8", data=data)).pixels
    np.testing.assert_array_equal(pixels, array)


def test_empty_image() -> None:
    msg = make_image(np.zeros((0, 4, 3), dtype=np.uint8), "bgr8", step=12, width=4)
    assert decode_image(msg).pixels.shape == (0, 4, 3)
