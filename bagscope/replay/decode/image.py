"""sensor_msgs/Image as a lazily decoded :class:`CameraImage`.

Most frames of a replay are never looked at pixel by pixel (a rate analyzer needs stamps, a lidar
stage needs no camera at all), so decoding is deferred to the first ``pixels`` access. The cheap
checks (known encoding, step and size) still run eagerly so that a corrupt message is reported
where it is read, not deep inside a stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.colour import demosaic_bilinear, reorder_channels, yuv422_to_rgb
from bagscope.replay.decode.stamp import header_fields
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from numpy.typing import NDArray


@dataclass(slots=True, kw_only=True, eq=False)
class CameraImage:
    """One camera image; ``pixels`` is decoded on first access and cached.

    ``encoding`` is the source's own string (``Image.encoding`` or ``CompressedImage.format``);
    ``pixels`` is normalised whatever it says: colour as RGB ``(H, W, 3)`` (``(H, W, 4)`` RGBA
    when there is alpha), mono and depth as ``(H, W)``, in the source's numeric type (uint8,
    uint16, float32 ...), native byte order, C-contiguous and read-only (it is shared by every
    consumer of the frame). Multi-channel OpenCV types (``8UC3`` ...) carry no channel order and
    are passed through as stored.
    """

    frame_id: str
    stamp_ns: int
    encoding: str
    width: int
    height: int
    compressed: bool
    loader: Callable[[], NDArray[Any]] = field(repr=False)
    _pixels: NDArray[Any] | None = field(default=None, init=False, repr=False)

    @property
    def pixels(self) -> NDArray[Any]:
        """The decoded image (see the class docstring for its layout)."""
        if self._pixels is None:
            pixels = np.ascontiguousarray(self.loader())
            pixels.flags.writeable = False
            self._pixels = pixels
        return self._pixels

    @property
    def is_decoded(self) -> bool:
        """Whether ``pixels`` has been computed already (useful to measure laziness)."""
        return self._pixels is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class PixelLayout:
    """How an encoding stores a pixel and what ``pixels`` makes of it."""

    channels: int  # values per pixel in the buffer (2 for packed 4:2:2 YUV)
    code: str  # numpy type code without byte order: "u1", "u2", "f4" ...
    kind: str  # "rgb", "bgr", "mono", "raw", "bayer", "uyvy", "yuyv"
    pattern: str = ""  # Bayer pattern, e.g. "rggb"

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * np.dtype(self.code).itemsize


def _named_layouts() -> dict[str, PixelLayout]:
    table: dict[str, PixelLayout] = {}
    for bits, code in (("8", "u1"), ("16", "u2")):
        table[f"rgb{bits}"] = PixelLayout(channels=3, code=code, kind="rgb")
        table[f"rgba{bits}"] = PixelLayout(channels=4, code=code, kind="rgb")
        table[f"bgr{bits}"] = PixelLayout(channels=3, code=code, kind="bgr")
        table[f"bgra{bits}"] = PixelLayout(channels=4, code=code, kind="bgr")
        table[f"mono{bits}"] = PixelLayout(channels=1, code=code, kind="mono")
        for pattern in ("rggb", "bggr", "gbrg", "grbg"):
            table[f"bayer_{pattern}{bits}"] = PixelLayout(
                channels=1, code=code, kind="bayer", pattern=pattern
            )
    for name in ("yuv422", "uyvy"):
        table[name] = PixelLayout(channels=2, code="u1", kind="uyvy")
    for name in ("yuv422_yuy2", "yuyv"):
        table[name] = PixelLayout(channels=2, code="u1", kind="yuyv")
    return table


NAMED_LAYOUTS: Mapping[str, PixelLayout] = MappingProxyType(_named_layouts())
# OpenCV-style "<bits><U|S|F>C<n>"; only the combinations OpenCV itself defines.
_CV_TYPE = re.compile(r"^(8|16|32|64)([USF])C([1-4])$", re.IGNORECASE)
_CV_CODES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("8", "U"): "u1",
        ("8", "S"): "i1",
        ("16", "U"): "u2",
        ("16", "S"): "i2",
        ("32", "S"): "i4",
        ("32", "F"): "f4",
        ("64", "F"): "f8",
    }
)


def pixel_layout(encoding: str) -> PixelLayout:
    """The layout of a ROS image encoding, or :class:`DecodeError` when we do not know it."""
    key = encoding.strip()
    layout = NAMED_LAYOUTS.get(key.lower())
    if layout is not None:
        return layout
    match = _CV_TYPE.match(key)
    if match is not None:
        code = _CV_CODES.get((match.group(1), match.group(2).upper()))
        if code is not None:
            channels = int(match.group(3))
            return PixelLayout(
                channels=channels, code=code, kind="mono" if channels == 1 else "raw"
            )
    msg = f"unsupported image encoding {encoding!r}"
    raise DecodeError(msg)


def as_uint8_buffer(data: Any) -> NDArray[np.uint8]:
    """A message's ``uint8[]`` payload as a 1-D array sharing its memory."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def strided_view(
    buf: NDArray[np.uint8], dtype: np.dtype[Any], *, shape: tuple[int, int, int], step: int
) -> NDArray[Any]:
    """``(rows, cols, channels)`` of ``dtype`` over ``buf`` with ``step`` bytes per row, no copy."""
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    itemsize = dtype.itemsize
    strides = (step, shape[2] * itemsize, itemsize)
    return np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)


def decode_pixels(
    buf: NDArray[np.uint8],
    layout: PixelLayout,
    *,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool,
) -> NDArray[Any]:
    """Turn an (already size-checked) raw image buffer into ``CameraImage.pixels``."""
    order = ">" if is_bigendian else "<"
    dtype = np.dtype(order + layout.code)
    view = strided_view(buf, dtype, shape=(height, width, layout.channels), step=step)
    if not dtype.isnative:
        view = view.astype(dtype.newbyteorder("="))
    if layout.kind == "rgb":
        return view
    if layout.kind == "bgr":
        return reorder_channels(view, (2, 1, 0, 3)[: layout.channels])
    if layout.kind == "bayer":
        return demosaic_bilinear(view[..., 0], pattern=layout.pattern)
    if layout.kind in ("uyvy", "yuyv"):
        return yuv422_to_rgb(view, luma_first=layout.kind == "yuyv")
    if layout.channels == 1:  # "mono" and single-channel "raw"
        return view[..., 0]
    return view


def decode_image(msg: Any) -> CameraImage:
    """Check a rosbags ``sensor_msgs/Image`` now; decode its pixels on first access."""
    stamp_ns, frame_id = header_fields(msg)
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    layout = pixel_layout(encoding)
    if layout.kind in ("uyvy", "yuyv") and width % 2:
        msg_ = f"{encoding} image width {width} is odd; 4:2:2 pixels come in pairs"
        raise DecodeError(msg_)
    if step < width * layout.bytes_per_pixel:
        msg_ = (
            f"{encoding} image step {step} < width {width} × {layout.bytes_per_pixel} "
            "bytes per pixel"
        )
        raise DecodeError(msg_)
    buf = as_uint8_buffer(msg.data)
    if buf.size < step * height:
        msg_ = (
            f"{encoding} image data has {buf.size} bytes, expected step {step} × "
            f"height {height} = {step * height}"
        )
        raise DecodeError(msg_)
    is_bigendian = bool(msg.is_bigendian)

    def load() -> NDArray[Any]:
        return decode_pixels(
            buf, layout, height=height, width=width, step=step, is_bigendian=is_bigendian
        )

    return CameraImage(
        frame_id=frame_id,
        stamp_ns=stamp_ns,
        encoding=encoding,
        width=width,
        height=height,
        compressed=False,
        loader=load,
    )
