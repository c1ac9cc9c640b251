"""Direct CDR parsers for the two payloads a replay touches most: PointCloud2, CompressedImage.

rosbags' generic deserializer builds every nested object; for a 2 MB sweep or a JPEG that is
most of the per-message cost of a replay, while all a frame needs is a handful of scalars and a
view of the data bytes. These parsers read exactly that, straight from the little-endian CDR
bytes, and hand the decoders an object with the same attribute names as the rosbags message
(plain, not frozen, dataclasses: a frozen one costs a microsecond per field to build, and these
are built once per message on the hot path, then read once by a decoder).
Anything unexpected (big-endian CDR, a truncated payload) returns None and the caller falls back
to rosbags, which gives the authoritative error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from numpy.typing import NDArray

_U32 = struct.Struct("<I")
_STAMP_AND_LENGTH = struct.Struct("<iII")  # header.stamp sec, nanosec, frame_id length
_THREE_U32 = struct.Struct("<III")
_FIELD_TAIL = struct.Struct("<IB3xI")  # offset, datatype, (pad), count
_BASE = 4  # CDR alignment counts from the end of the encapsulation header


@dataclass(slots=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(slots=True)
class Header:
    stamp: Stamp
    frame_id: str


@dataclass(slots=True)
class PointField:
    name: str
    offset: int
    datatype: int
    count: int


@dataclass(slots=True, kw_only=True)
class PointCloud2:
    header: Header
    height: int
    width: int
    fields: tuple[PointField, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: NDArray[np.uint8]
    is_dense: bool


@dataclass(slots=True, kw_only=True)
class CompressedImage:
    header: Header
    format: str
    data: NDArray[np.uint8]


class _TruncatedError(Exception):
    """A length field points past the end of the payload."""


def _little_endian_cdr(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and data[0] == 0 and data[1] in (1, 3)


def _aligned4(pos: int) -> int:
    return pos + (-(pos - _BASE) % 4)


def _string(data: bytes | memoryview, pos: int) -> tuple[str, int]:
    """A CDR string (u32 length including the NUL, then the bytes) and the position after it."""
    (size,) = _U32.unpack_from(data, pos)
    end = pos + 4 + size
    if size == 0 or end > len(data):
        raise _TruncatedError
    return bytes(data[pos + 4 : end - 1]).decode(), end


def _header(data: bytes | memoryview) -> tuple[Header, int]:
    """``std_msgs/Header`` (ROS 2: stamp, frame_id) at the start of the payload."""
    sec, nanosec, size = _STAMP_AND_LENGTH.unpack_from(data, _BASE)
    end = _BASE + 12 + size
    if size == 0 or end > len(data):
        raise _TruncatedError
    frame_id = bytes(data[_BASE + 12 : end - 1]).decode()
    return Header(Stamp(int(sec), int(nanosec)), frame_id), end


def _blob(data: bytes | memoryview, pos: int, size: int) -> NDArray[np.uint8]:
    if pos + size > len(data):
        raise _TruncatedError
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=pos)


def parse_pointcloud2(data: bytes | memoryview) -> PointCloud2 | None:
    """Parse a CDR PointCloud2 without copying its point bytes; None when not plain LE CDR."""
    if not _little_endian_cdr(data):
        return None
    try:
        header, pos = _header(data)
        pos = _aligned4(pos)
        height, width, count = _THREE_U32.unpack_from(data, pos)
        pos += 12
        fields = []
        for _ in range(count):
            name, pos = _string(data, pos)
            pos = _aligned4(pos)
            offset, datatype, field_count = _FIELD_TAIL.unpack_from(data, pos)
            pos += _FIELD_TAIL.size
            fields.append(PointField(name, int(offset), int(datatype), int(field_count)))
        is_bigendian = bool(data[pos])
        pos = _aligned4(pos + 1)
        point_step, row_step, size = _THREE_U32.unpack_from(data, pos)
        pos += 12
        blob = _blob(data, pos, size)
        is_dense = bool(data[pos + size])
    except (_TruncatedError, IndexError, struct.error, UnicodeDecodeError):
        return None
    return PointCloud2(
        header=header,
        height=int(height),
        width=int(width),
        fields=tuple(fields),
        is_bigendian=is_bigendian,
        point_step=int(point_step),
        row_step=int(row_step),
        data=blob,
        is_dense=is_dense,
    )


def parse_compressed_image(data: bytes | memoryview) -> CompressedImage | None:
    """Parse a CDR CompressedImage without copying its bytes; None when not plain LE CDR."""
    if not _little_endian_cdr(data):
        return None
    try:
        header, pos = _header(data)
        fmt, pos = _string(data, _aligned4(pos))
        pos = _aligned4(pos)
        (size,) = _U32.unpack_from(data, pos)
        blob = _blob(data, pos + 4, size)
    except (_TruncatedError, IndexError, struct.error, UnicodeDecodeError):
        return None
    return CompressedImage(header=header, format=fmt, data=blob)


# -- structural checks: the same verdicts as decoding, without building the records ---------
# A replay checks every message of a synced topic, most of which no frame ever looks at; these
# walk the CDR layout and validate sizes and image markers, and return False (decode instead)
# whenever the fast path cannot tell.

_LAYOUTS: dict[bytes, Exception | None] = {}  # raw field list + step + byte order -> verdict
_MAX_LAYOUTS = 256


def check_pointcloud2(data: bytes | memoryview) -> bool:
    """True if the cloud's sizes and point layout are consistent; DecodeError if not."""
    if not _little_endian_cdr(data):
        return False
    try:
        (size,) = _U32.unpack_from(data, _BASE + 8)
        pos = _aligned4(_BASE + 12 + size)
        height, width, count = _THREE_U32.unpack_from(data, pos)
        start = pos = pos + 12
        for _ in range(count):
            (size,) = _U32.unpack_from(data, pos)
            pos = _aligned4(pos + 4 + size) + _FIELD_TAIL.size
        fields_end = pos
        is_bigendian = data[pos]
        pos = _aligned4(pos + 1)
        point_step, row_step, size = _THREE_U32.unpack_from(data, pos)
        if pos + 12 + size + 1 > len(data):
            return False  # a payload cut inside the points: let decoding say so
    except (IndexError, struct.error):
        return False
    key = bytes(data[start:fields_end]) + _THREE_U32.pack(point_step, is_bigendian, 0)
    verdict = _LAYOUTS.get(key, _UNCHECKED)
    if verdict is _UNCHECKED:
        verdict = _layout_verdict(data, point_step=point_step, is_bigendian=bool(is_bigendian))
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[key] = verdict
    if verdict is not None:
        raise verdict
    check_cloud_sizes(
        height=height, width=width, point_step=point_step, row_step=row_step, size=size
    )
    return True


_UNCHECKED = Exception()


def _layout_verdict(
    data: bytes | memoryview, *, point_step: int, is_bigendian: bool
) -> Exception | None:
    from bagscope.replay.decode.pointcloud import pointcloud_dtype

    parsed = parse_pointcloud2(data)
    if parsed is None:
        return None
    try:
        pointcloud_dtype(parsed.fields, point_step=point_step, is_bigendian=is_bigendian)
    except DecodeError as err:
        return err
    return None


def check_cloud_sizes(
    *, height: int, width: int, point_step: int, row_step: int, size: int
) -> None:
    """The size rules every PointCloud2 must satisfy (DecodeError naming the numbers)."""

    if row_step < width * point_step:
        msg = f"row_step {row_step} < width {width} × point_step {point_step}"
        raise DecodeError(msg)
    if size != row_step * height:
        msg = (
            f"point cloud data has {size} bytes, expected row_step {row_step} × "
            f"height {height} = {row_step * height}"
        )
        raise DecodeError(msg)


def check_compressed_image(data: bytes | memoryview) -> bool:
    """True if the image's markers and lengths are whole; DecodeError if not."""
    if not _little_endian_cdr(data):
        return False
    try:
        (size,) = _U32.unpack_from(data, _BASE + 8)
        fmt, pos = _string(data, _aligned4(_BASE + 12 + size))
        pos = _aligned4(pos)
        (size,) = _U32.unpack_from(data, pos)
        blob = _blob(data, pos + 4, size)
    except (_TruncatedError, IndexError, struct.error, UnicodeDecodeError):
        return False
    from bagscope.replay.decode.compressed import inspect_compressed

    inspect_compressed(blob, fmt)
    return True
