"""One message of a log, decoded only when somebody asks.

Most consumers (sync, rate and gap analysis) need a topic and two times, not the payload; keeping
the raw bytes and decoding on demand is what lets a replay run at the speed of the disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bagscope.replay.storage.stamps import header_stamp_ns

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bagscope.replay.decode import Decoder
    from bagscope.replay.storage.base import Connection, RawMessage
    from bagscope.replay.types import MessageTypes

_UNSET: Any = object()
_DECODERS: Mapping[str, Decoder] | None = None


def _decoders() -> Mapping[str, Decoder]:
    """The decode table, imported on first use: reading metadata and stamps never needs the
    decoders (or numpy's image stack), so `replay info` starts without them."""
    global _DECODERS  # noqa: PLW0603 -- a one-time lazy import, then a plain lookup per message
    if _DECODERS is None:
        from bagscope.replay.decode import DECODERS

        _DECODERS = DECODERS
    return _DECODERS


class Message:
    """A message as read from a log: times always, payload on demand.

    ``log_time_ns`` is when the recorder received it; ``header_stamp_ns`` is when the sensor says
    it was measured (None for types without a header). Both are kept because their difference is
    exactly what latency and clock analyses look at.
    """

    __slots__ = ("_decoded", "_payload", "_raw", "_stamp", "_types")

    def __init__(self, raw: RawMessage, types: MessageTypes) -> None:
        self._raw = raw
        self._types = types
        self._stamp: int | None = _UNSET
        self._payload: object = _UNSET
        self._decoded: object = _UNSET

    @property
    def topic(self) -> str:
        return self._raw.connection.topic

    @property
    def msgtype(self) -> str:
        return self._raw.connection.msgtype

    @property
    def connection(self) -> Connection:
        return self._raw.connection

    @property
    def log_time_ns(self) -> int:
        return self._raw.log_time_ns

    @property
    def data(self) -> bytes | memoryview:
        """The serialized payload exactly as stored."""
        return self._raw.data

    @property
    def size(self) -> int:
        return len(self._raw.data)

    @property
    def header_stamp_ns(self) -> int | None:
        """The header stamp, read straight from the bytes without deserialising the message."""
        if self._stamp is _UNSET:
            conn = self._raw.connection
            if self._types.starts_with_header(conn.msgtype, conn.serialization):
                self._stamp = header_stamp_ns(self._raw.data, conn.serialization)
            else:
                self._stamp = None
        return self._stamp

    def stamp_ns(self, source: str = "header") -> int:
        """The time used for syncing: the header stamp when asked and present, else log time."""
        if source == "header":
            stamp = self.header_stamp_ns
            if stamp is not None:
                return stamp
        return self._raw.log_time_ns

    @property
    def payload(self) -> object:
        """The raw rosbags message object, every field as recorded (deserialised once, cached).

        :meth:`decode` gives bagscope's record where there is one; ``payload`` is the escape
        hatch for everything else (custom types, fields a record leaves out).
        """
        if self._payload is _UNSET:
            conn = self._raw.connection
            self._payload = self._types.deserialize(
                self._raw.data, conn.msgtype, conn.serialization, topic=conn.topic
            )
        return self._payload

    def check(self) -> None:
        """Raise DecodeError if the payload is corrupt, as :meth:`decode` would, but cheaply.

        Types with a CDR structural check (clouds, compressed images) are judged from their
        bytes without building the record; others are decoded (and the record kept).
        """
        if self._decoded is not _UNSET:
            return
        entry = _decoders().get(self.msgtype)
        if entry is None:
            return
        raw, check = self._raw, entry.check_cdr
        if check is None or raw.connection.serialization != "cdr" or not check(raw.data):
            self.decode()

    def decode(self) -> object:
        """bagscope's record for every type in the decode table, else the raw :attr:`payload`.

        Clouds become `PointCloud`, images `CameraImage` (pixels decoded on first access),
        CameraInfo a `CameraModel`, Imu/NavSatFix/Odometry/LaserScan their sample records. The
        payload's structure is checked here, so a corrupt message fails now (DecodeError).
        """
        if self._decoded is _UNSET:
            entry = _decoders().get(self.msgtype)
            if entry is None:
                self._decoded = self.payload
            else:
                fast = None
                if entry.parse_cdr is not None and self._raw.connection.serialization == "cdr":
                    fast = entry.parse_cdr(self._raw.data)
                self._decoded = entry.decode(fast if fast is not None else self.payload)
        return self._decoded

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, msgtype={self.msgtype!r}, "
            f"log_time_ns={self.log_time_ns}, size={self.size})"
        )
