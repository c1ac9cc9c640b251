"""CompressedImage decoding: JPEG, PNG and compressedDepth as image_transport writes them."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pytest
import simplejpeg
from PIL import Image as PILImage
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import DECODERS, decode_compressed_image
from bagscope.replay.errors import DecodeError

TS = get_typestore(Stores.ROS2_HUMBLE)
COMPRESSED = "sensor_msgs/msg/CompressedImage"
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
CompressedImage = TS.types[COMPRESSED]


def make_msg(data: bytes, fmt: str) -> Any:
    msg = CompressedImage(
        header=Header(stamp=Time(sec=3, nanosec=500), frame_id="cam"),
        format=fmt,
        data=np.frombuffer(data, dtype=np.uint8),
    )
    return TS.deserialize_cdr(TS.serialize_cdr(msg, COMPRESSED), COMPRESSED)


def smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """Gradients JPEG reproduces closely, with distinct R, G and B so channel swaps show."""
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    rgb = np.empty((height, width, 3), dtype=np.float64)
    rgb[..., 0] = 40 + 180 * cols + 0 * rows
    rgb[..., 1] = 30 + 150 * rows + 0 * cols
    rgb[..., 2] = 200 - 120 * cols * rows
    return np.rint(rgb).astype(np.uint8)


def png_bytes(array: np.ndarray, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array, **kwargs).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt", ["jpeg", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8"]
)
def test_colour_jpeg_decodes_to_rgb(fmt: str) -> None:
    rgb = smooth_rgb()
    msg = make_msg(simplejpeg.encode_jpeg(rgb, quality=95, colorspace="RGB"), fmt)
    image = decode_compressed_image(msg)
    assert (image.width, image.height) == (64, 48)  # from the header ...
    assert not image.is_decoded  # ... without decoding
    assert image.compressed
    assert image.encoding == fmt
    assert (image.stamp_ns, image.frame_id) == (3_000_000_500, "cam")
    pixels = image.pixels
    assert pixels.shape == (48, 64, 3)
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - rgb).mean() < 2.0
    assert DECODERS[COMPRESSED].decode is decode_compressed_image


def test_mono_jpeg_is_two_dimensional() -> None:
    grey = np.ascontiguousarray(smooth_rgb()[..., 1])
    data = simplejpeg.encode_jpeg(grey[..., None], quality=95, colorspace="GRAY")
    image = decode_compressed_image(make_msg(data, "mono8; jpeg compressed mono8"))
    assert image.pixels.shape == (48, 64)
    assert np.abs(image.pixels.astype(int) - grey).mean() < 2.0


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "rgb8; png compressed rgb8"])
def test_png_colour_is_exact(fmt: str) -> None:
    rgb = smooth_rgb(5, 7)
    image = decode_compressed_image(make_msg(png_bytes(rgb), fmt))
    assert (image.width, image.height) == (7, 5)
    np.testing.assert_array_equal(image.pixels, rgb)


def test_png_modes() -> None:
    rgba = np.dstack([smooth_rgb(4, 4), np.full((4, 4), 9, dtype=np.uint8)])
    np.testing.assert_array_equal(
        decode_compressed_image(make_msg(png_bytes(rgba), "png")).pixels, rgba
    )
    grey = smooth_rgb(4, 4)[..., 0]
    pixels = decode_compressed_image(make_msg(png_bytes(grey), "mono8; png compressed")).pixels
    np.testing.assert_array_equal(pixels, grey)
    deep = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    pixels = decode_compressed_image(make_msg(png_bytes(deep), "16UC1; png compressed")).pixels
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, deep)
    palette = PILImage.fromarray(smooth_rgb(4, 4)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    pixels = decode_compressed_image(make_msg(buffer.getvalue(), "png")).pixels
    np.testing.assert_array_equal(pixels, np.asarray(palette.convert("RGB")))


def depth_header(quant_a: float = 0.0, quant_b: float = 0.0) -> bytes:
    return struct.pack("<iff", 0, quant_a, quant_b)  # format INV_DEPTH = 0


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth png", "16UC1; compressedDepth"])
def test_compressed_depth_16uc1(fmt: str) -> None:
    depth_mm = np.array([[0, 500, 1000], [2500, 9999, 65535]], dtype=np.uint16)
    msg = make_msg(depth_header() + png_bytes(depth_mm), fmt)
    image = decode_compressed_image(msg)
    assert (image.width, image.height) == (3, 2)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, depth_mm)


def test_compressed_depth_16uc1_without_header_from_early_versions() -> None:
    depth_mm = np.array([[1, 2], [3, 4]], dtype=np.uint16)
    image = decode_compressed_image(make_msg(png_bytes(depth_mm), "16UC1; compressedDepth"))
    np.testing.assert_array_equal(image.pixels, depth_mm)


def test_compressed_depth_32fc1_inverse_depth() -> None:
    # Quantise as compressed_depth_image_transport does (depth_max 10 m, quantization 100).
    depth_z0, depth_max = np.float32(100.0), np.float32(10.0)
    quant_a = depth_z0 * (depth_z0 + np.float32(1.0))
    quant_b = np.float32(1.0) - quant_a / depth_max
    depth = np.array([[0.5, 1.0, 2.0], [7.25, np.nan, 12.0]], dtype=np.float32)
    inverse = np.zeros(depth.shape, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        near = depth < depth_max
    inverse[near] = (quant_a / depth[near] + quant_b).astype(np.uint16)
    msg = make_msg(
        depth_header(float(quant_a), float(quant_b)) + png_bytes(inverse),
        "32FC1; compressedDepth png",
    )
    image = decode_compressed_image(msg)
    pixels = image.pixels
    assert pixels.dtype == np.float32
    assert pixels.shape == (2, 3)
    want = np.full(depth.shape, np.nan, dtype=np.float32)
    want[near] = quant_a / (inverse[near].astype(np.float32) - quant_b)
    np.testing.assert_array_equal(pixels, want)
    # Quantisation error grows with depth; it stays well under 1 %.
    np.testing.assert_allclose(pixels[near], depth[near], rtol=1e-2)
    assert np.isnan(pixels[1, 1])
    assert np.isnan(pixels[1, 2])  # beyond depth_max


@pytest.mark.parametrize(
    ("data", "fmt", "match"),
    [
        (b"not an image at all", "jpeg", r"neither JPEG nor PNG"),
        (b"\xff\xd8\xff" + b"\x00" * 40, "jpeg", r"corrupt JPEG .*segment 0x00 runs past"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 4 + b"XXXX", "png", r"corrupt PNG .*'XXXX' runs past"),
        (depth_header() + b"\x00" * 20, "16UC1; compressedDepth png", r"holds no PNG"),
        (b"\x00" * 20, "16UC1; compressedDepth rvl", r"RVL images are not supported"),
        (b"\x00" * 20, "8UC1; compressedDepth png", r"depth encoding '8UC1'"),
    ],
)
def test_undecodable_headers_fail_eagerly(data: bytes, fmt: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_compressed_image(make_msg(data, fmt))


def test_32fc1_without_header_fails_eagerly() -> None:
    data = png_bytes(np.ones((2, 2), dtype=np.uint16))
    with pytest.raises(DecodeError, match="holds no PNG after its header"):
        decode_compressed_image(make_msg(data, "32FC1; compressedDepth png"))


def test_truncated_bodies_fail_when_read_not_when_looked_at() -> None:
    """A payload cut short is a decode error at decode(), before any pixel is wanted."""
    jpeg = simplejpeg.encode_jpeg(smooth_rgb(), quality=95, colorspace="RGB")
    with pytest.raises(DecodeError, match=r"corrupt JPEG .*no end-of-image marker \(cut short"):
        decode_compressed_image(make_msg(jpeg[: len(jpeg) // 2], "jpeg"))
    png = png_bytes(np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8))
    with pytest.raises(DecodeError, match=r"corrupt PNG .*runs past the end"):
        decode_compressed_image(make_msg(png[: len(png) // 2], "png"))
    with pytest.raises(DecodeError, match=r"corrupt PNG .*no IEND chunk"):
        decode_compressed_image(make_msg(png[:-12], "png"))  # cut exactly before IEND
    depth = depth_header() + png
    with pytest.raises(DecodeError, match=r"corrupt PNG"):
        decode_compressed_image(make_msg(depth[:-30], "16UC1; compressedDepth png"))


def test_padding_after_the_jpeg_end_marker_is_accepted() -> None:
    jpeg = simplejpeg.encode_jpeg(smooth_rgb(), quality=95, colorspace="RGB")
    image = decode_compressed_image(make_msg(jpeg + b"\x00" * 16, "jpeg"))
    assert image.pixels.shape == (48, 64, 3)


def test_known_headers_still_need_the_whole_image() -> None:
    """Once a camera's headers are known, a cut frame with those headers is still caught."""
    jpeg = simplejpeg.encode_jpeg(smooth_rgb(), quality=95, colorspace="RGB")
    assert decode_compressed_image(make_msg(jpeg, "jpeg")).width == 64  # headers now known
    with pytest.raises(DecodeError, match="no end-of-image marker"):
        decode_compressed_image(make_msg(jpeg[: len(jpeg) // 2], "jpeg"))
    with pytest.raises(DecodeError, match="runs past the end"):
        decode_compressed_image(make_msg(jpeg[:100], "jpeg"))  # cut inside the known headers
