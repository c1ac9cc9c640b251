"""Direct CDR parsers for the two payloads a replay touches most: PointCloud2, CompressedImage.

rosbags' generic deserializer builds every nested object; for a 2 MB sweep or a JPEG that is
most of the per-message cost of a replay, while all a frame needs is a handful of scalars and a
view of the data bytes. These parsers read exactly that, straight from the little-endian CDR
bytes, and hand the decoders an object with the same attribute names as the rosbags message.
Anything unexpected (big-endian CDR, a truncated payload) returns None and the caller falls back
to rosbags, which gives the authoritative error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
_FIELD_TAIL = struct.Struct("<IB3xI")  # offset, datatype, (pad), count
_BASE = 4  # CDR alignment counts from the end of the encapsulation header


@dataclass(frozen=True, slots=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True, slots=True)
class Header:
    stamp: Stamp
    frame_id: str


@dataclass(frozen=True, slots=True)
class PointField:
    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressedImage:
    header: Header
    format: str
    data: NDArray[np.uint8]


class _Reader:
    """A cursor over CDR bytes that knows CDR's alignment rule."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = buf
        self.pos = _BASE

    def align(self, size: int) -> None:
        rel = self.pos - _BASE
        self.pos += -rel % size

    def u32(self) -> int:
        self.align(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def u8(self) -> int:
        value = self.buf[self.pos]
        self.pos += 1
        return int(value)

    def string(self) -> str:
        size = self.u32()
        end = self.pos + size
        if size == 0 or end > len(self.buf):
            raise IndexError
        text = bytes(self.buf[self.pos : end - 1]).decode()
        self.pos = end
        return text

    def header(self) -> Header:
        self.align(4)
        sec, nanosec = _STAMP.unpack_from(self.buf, self.pos)
        self.pos += 8
        return Header(Stamp(int(sec), int(nanosec)), self.string())

    def blob(self) -> NDArray[np.uint8]:
        size = self.u32()
        if self.pos + size > len(self.buf):
            raise IndexError
        view = np.frombuffer(self.buf, dtype=np.uint8, count=size, offset=self.pos)
        self.pos += size
        return view


def _little_endian_cdr(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and data[0] == 0 and data[1] in (1, 3)


def parse_pointcloud2(data: bytes | memoryview) -> PointCloud2 | None:
    """Parse a CDR PointCloud2 without copying its point bytes; None when not plain LE CDR."""
    if not _little_endian_cdr(data):
        return None
    r = _Reader(data)
    try:
        header = r.header()
        height, width = r.u32(), r.u32()
        fields = []
        for _ in range(r.u32()):
            name = r.string()
            r.align(4)
            offset, datatype, count = _FIELD_TAIL.unpack_from(data, r.pos)
            r.pos += _FIELD_TAIL.size
            fields.append(PointField(name, int(offset), int(datatype), int(count)))
        is_bigendian = bool(r.u8())
        point_step, row_step = r.u32(), r.u32()
        blob = r.blob()
        is_dense = bool(r.u8())
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return PointCloud2(
        header=header,
        height=height,
        width=width,
        fields=tuple(fields),
        is_bigendian=is_bigendian,
        point_step=point_step,
        row_step=row_step,
        data=blob,
        is_dense=is_dense,
    )


def parse_compressed_image(data: bytes | memoryview) -> CompressedImage | None:
    """Parse a CDR CompressedImage without copying its bytes; None when not plain LE CDR."""
    if not _little_endian_cdr(data):
        return None
    r = _Reader(data)
    try:
        header = r.header()
        fmt = r.string()
        blob = r.blob()
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return CompressedImage(header=header, format=fmt, data=blob)
