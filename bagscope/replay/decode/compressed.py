"""sensor_msgs/CompressedImage (JPEG, PNG, compressedDepth) as a lazily decoded CameraImage.

The ``format`` strings image_transport writes vary across versions and drivers (``jpeg``,
``jpg``, ``bgr8; jpeg compressed bgr8``, ``16UC1; compressedDepth png`` ...), so the codec is
taken from the payload's magic bytes and ``format`` only decides whether the PNG is a
compressedDepth payload. Width and height come from the JPEG/PNG header and the payload's
structure is checked (:mod:`~bagscope.replay.decode.structure`), which costs microseconds, so
that corrupt payloads fail at read time and pixels are decoded only on demand.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.image import CameraImage, as_uint8_buffer
from bagscope.replay.decode.stamp import header_fields
from bagscope.replay.decode.structure import check_jpeg, check_png
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray
    from PIL import Image as PILImage

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# compressed_depth_image_transport's ConfigHeader: int32 format, float32 depthParam[2].
DEPTH_HEADER = struct.Struct("<iff")
_IHDR = struct.Struct(">4sII")  # chunk type, width, height (after the 8-byte signature + length)


def decode_compressed_image(msg: Any) -> CameraImage:
    """Check a rosbags ``sensor_msgs/CompressedImage`` now; decode its pixels on first access."""
    stamp_ns, frame_id = header_fields(msg)
    fmt = str(msg.format)
    height, width, loader = inspect_compressed(as_uint8_buffer(msg.data), fmt)
    return CameraImage(
        frame_id=frame_id,
        stamp_ns=stamp_ns,
        encoding=fmt,
        width=width,
        height=height,
        compressed=True,
        loader=loader,
    )


def inspect_compressed(
    buf: NDArray[np.uint8], fmt: str
) -> tuple[int, int, Callable[[], NDArray[Any]]]:
    """``(height, width, pixel loader)`` of a compressed payload whose structure checks out.

    Raises :class:`DecodeError` for anything cut short or unrecognised; decodes no pixel.
    """
    if "compresseddepth" in fmt.lower():
        return _compressed_depth(buf, fmt)
    if buf[: len(JPEG_MAGIC)].tobytes() == JPEG_MAGIC:
        height, width, components = check_jpeg(buf, fmt)
        return height, width, _jpeg_loader(buf, fmt, mono=components == 1)
    if buf[: len(PNG_MAGIC)].tobytes() == PNG_MAGIC:
        check_png(buf, fmt)
        width, height = png_size(buf, fmt)
        return height, width, _png_loader(buf, fmt)
    msg = f"compressed image ({fmt!r}, {buf.size} bytes) is neither JPEG nor PNG"
    raise DecodeError(msg)


def _jpeg_loader(buf: NDArray[np.uint8], fmt: str, *, mono: bool) -> Callable[[], NDArray[Any]]:
    def load() -> NDArray[Any]:
        import simplejpeg  # only when pixels are wanted: checking a JPEG needs no codec

        try:
            pixels = simplejpeg.decode_jpeg(buf, colorspace="GRAY" if mono else "RGB")
        except ValueError as err:
            msg = f"cannot decode JPEG compressed image ({fmt!r}): {err}"
            raise DecodeError(msg) from err
        return np.asarray(pixels[..., 0] if mono else pixels)

    return load


def png_size(buf: NDArray[np.uint8], fmt: str) -> tuple[int, int]:
    """``(width, height)`` from the IHDR chunk that must follow the PNG signature."""
    start = len(PNG_MAGIC) + 4  # the first chunk's 4-byte length precedes its type
    chunk = buf[start : start + _IHDR.size].tobytes()
    if len(chunk) < _IHDR.size or not chunk.startswith(b"IHDR"):
        msg = f"compressed image ({fmt!r}) has a PNG signature but no IHDR header"
        raise DecodeError(msg)
    _, width, height = _IHDR.unpack(chunk)
    return int(width), int(height)


def decode_png(data: NDArray[np.uint8], fmt: str) -> NDArray[Any]:
    """Decode PNG bytes to ``(H, W)`` mono/16-bit or ``(H, W, 3|4)`` RGB(A), native order."""
    from PIL import Image as PILImage  # imported on first PNG: most logs carry none

    try:
        with PILImage.open(io.BytesIO(data.tobytes())) as source:
            source.load()
            pixels = np.asarray(_normalised_mode(source))
    except (OSError, ValueError, SyntaxError) as err:
        msg = f"cannot decode PNG compressed image ({fmt!r}): {err}"
        raise DecodeError(msg) from err
    if pixels.dtype == np.int32:  # older Pillow opens 16-bit grey PNGs as mode "I"
        return pixels.astype(np.uint16)
    if not pixels.dtype.isnative:
        return pixels.astype(pixels.dtype.newbyteorder("="))
    return pixels


def _normalised_mode(image: PILImage.Image) -> PILImage.Image:
    """Grey, 16-bit grey, RGB or RGBA: the modes ``pixels`` promises."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA", "LA"):
        alpha = image.mode != "P" or "transparency" in image.info
        return image.convert("RGBA" if alpha else "RGB")
    if image.mode in ("L", "RGB", "RGBA", "I") or image.mode.startswith("I;16"):
        return image
    return image.convert("RGB")


def _png_loader(buf: NDArray[np.uint8], fmt: str) -> Callable[[], NDArray[Any]]:
    def load() -> NDArray[Any]:
        return decode_png(buf, fmt)

    return load


def _compressed_depth(
    buf: NDArray[np.uint8], fmt: str
) -> tuple[int, int, Callable[[], NDArray[Any]]]:
    """compressed_depth_image_transport: a 12-byte ConfigHeader, then a 16-bit PNG.

    ``16UC1`` PNGs hold the depth itself; ``32FC1`` ones hold quantised *inverse* depth,
    ``depth = depthQuantA / (value - depthQuantB)`` with 0 meaning "no depth" (NaN).
    """
    lowered = fmt.lower()
    encoding = fmt.split(";", 1)[0].strip().upper()
    if "rvl" in lowered:
        msg = f"compressedDepth RVL images are not supported ({fmt!r}); only PNG is"
        raise DecodeError(msg)
    if encoding not in ("16UC1", "32FC1"):
        msg = f"compressedDepth image has depth encoding {encoding!r}; expected 16UC1 or 32FC1"
        raise DecodeError(msg)
    if buf[DEPTH_HEADER.size : DEPTH_HEADER.size + len(PNG_MAGIC)].tobytes() == PNG_MAGIC:
        _, quant_a, quant_b = DEPTH_HEADER.unpack(buf[: DEPTH_HEADER.size].tobytes())
        png = buf[DEPTH_HEADER.size :]
    elif buf[: len(PNG_MAGIC)].tobytes() == PNG_MAGIC and encoding == "16UC1":
        # Early compressed_depth_image_transport wrote the PNG with no ConfigHeader.
        quant_a = quant_b = 0.0
        png = buf
    else:
        msg = f"compressedDepth image ({fmt!r}, {buf.size} bytes) holds no PNG after its header"
        raise DecodeError(msg)
    check_png(png, fmt)
    width, height = png_size(png, fmt)

    def load() -> NDArray[Any]:
        values = decode_png(png, fmt)
        if values.ndim != 2:
            msg = f"compressedDepth PNG ({fmt!r}) is not single-channel"
            raise DecodeError(msg)
        if encoding == "16UC1":
            return values.astype(np.uint16, copy=False)
        inverse = values.astype(np.float32)
        depth = np.full(inverse.shape, np.nan, dtype=np.float32)
        valid = inverse != 0
        depth[valid] = np.float32(quant_a) / (inverse[valid] - np.float32(quant_b))
        return depth

    return height, width, load
