"""One message of a log, decoded only when somebody asks.

Most consumers (sync, rate and gap analysis) need a topic and two times, not the payload; keeping
the raw bytes and decoding on demand is what lets a replay run at the speed of the disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bagscope.replay.storage.stamps import header_stamp_ns

if TYPE_CHECKING:
    from bagscope.replay.storage.base import Connection, RawMessage, Storage

_UNSET: Any = object()


class Message:
    """A message as read from a log: times always, payload on demand.

    ``log_time_ns`` is when the recorder received it; ``header_stamp_ns`` is when the sensor says
    it was measured (None for types without a header). Both are kept because their difference is
    exactly what latency and clock analyses look at.
    """

    __slots__ = ("_decoded", "_payload", "_raw", "_stamp", "_storage")

    def __init__(self, raw: RawMessage, storage: Storage) -> None:
        self._raw = raw
        self._storage = storage
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
            if self._storage.starts_with_header(conn.msgtype):
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
        """The rosbags message object (deserialised once, then cached)."""
        if self._payload is _UNSET:
            conn = self._raw.connection
            self._payload = self._storage.deserialize(
                self._raw.data, conn.msgtype, conn.serialization
            )
        return self._payload

    def decode(self) -> object:
        """Our record for sensor types (PointCloud, CameraImage, CameraModel), else the payload."""
        if self._decoded is _UNSET:
            # Imported here: reading metadata and stamps never needs the decoders (or numpy's
            # image stack), and `replay info` should start instantly.
            from bagscope.replay.decode import DECODERS

            decoder = DECODERS.get(self.msgtype)
            if decoder is None:
                self._decoded = self.payload
            else:
                self._decoded = decoder(self._fast_payload() or self.payload)
        return self._decoded

    def _fast_payload(self) -> object | None:
        """The hot sensor types parsed straight from CDR bytes (None: use rosbags)."""
        if self._raw.connection.serialization != "cdr":
            return None
        from bagscope.replay.decode import CDR_PARSERS

        parser = CDR_PARSERS.get(self.msgtype)
        return parser(self._raw.data) if parser is not None else None

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, msgtype={self.msgtype!r}, "
            f"log_time_ns={self.log_time_ns}, size={self.size})"
        )
