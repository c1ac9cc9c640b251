"""Header stamps straight from the serialized bytes.

Sync only needs ``header.stamp``; decoding a 2 MB point cloud to read 8 bytes would dominate
replay time. For a type whose first field is ``std_msgs/msg/Header`` the stamp sits at bytes
4..12 in both encodings: after CDR's 4-byte encapsulation header, and after ROS1's ``uint32 seq``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from bagscope.replay.storage.base import Serialization

_LE = struct.Struct("<iI")
_BE = struct.Struct(">iI")
_ROS1 = struct.Struct("<II")


def header_stamp_ns(data: bytes | memoryview, serialization: Serialization) -> int:
    """Return ``header.stamp`` in nanoseconds of a payload whose type starts with a Header."""
    if len(data) < 12:
        msg = f"payload of {len(data)} bytes is too short to hold a header stamp"
        raise DecodeError(msg)
    if serialization == "ros1":
        sec, nsec = _ROS1.unpack_from(data, 4)
    else:
        # Byte 1 of the encapsulation header: 0x01 little endian (CDR_LE), 0x00 big endian.
        sec, nsec = (_LE if data[1] & 1 else _BE).unpack_from(data, 4)
    return int(sec) * 1_000_000_000 + int(nsec)
