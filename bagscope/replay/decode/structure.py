"""Cheap structural checks of JPEG and PNG payloads: markers and lengths, no pixel decoding.

A frame decodes its pixels only when somebody looks at them, but a replay must still count an
image cut short as a decode error the moment it is read, whether or not a frame uses it. Walking
the segment (JPEG) or chunk (PNG) lengths and finding the end marker costs microseconds and
catches what a recorder that lost data leaves behind: a payload that stops mid-stream.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_U16_BE = struct.Struct(">H")
_SOF_FIELDS = struct.Struct(">HHB")  # height, width, components (after the sample precision)
_PNG_CHUNK = struct.Struct(">I4s")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOS, _EOI = 0xDA, 0xD9
# Start-of-frame markers (baseline, progressive, lossless, arithmetic), not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0..7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, _EOI})
# An encoder may pad after EOI; entropy-coded data never holds FF D9, so a short tail search
# cannot be fooled by image data.
_EOI_TAIL = 64
# Headers (everything up to the image data) seen to be whole, with their frame size: a few
# cameras' worth.
_KNOWN_HEADERS: dict[bytes, tuple[int, int, int]] = {}
_MAX_KNOWN_HEADERS = 16


def check_jpeg(buf: NDArray[np.uint8], fmt: str) -> tuple[int, int, int]:
    """``(height, width, components)`` from the frame header, once the JPEG's headers are
    whole and it ends with EOI; :class:`DecodeError` otherwise.

    A camera writes the same headers (tables, size) into every frame: headers already walked
    once are recognised by their bytes, so a replay walks each camera's headers only once.
    """
    data = buf.data
    size = buf.size
    for known, seen in _KNOWN_HEADERS.items():
        if size > len(known) and data[: len(known)] == known:
            _check_eoi(data, fmt, size)
            return seen
    pos = 2  # after SOI
    frame: tuple[int, int, int] | None = None
    while True:
        if pos + 4 > size:
            _broken(fmt, size, "headers run past the end of the data")
        if data[pos] != 0xFF:
            _broken(fmt, size, f"no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = _U16_BE.unpack_from(data, pos + 2)
        if marker in _SOF and pos + 10 <= size:
            height, width, components = _SOF_FIELDS.unpack_from(data, pos + 5)
            frame = (height, width, components)
        pos += 2 + length
        if length < 2 or pos > size:
            _broken(fmt, size, f"segment {marker:#04x} runs past the end of the data")
        if marker == _SOS:
            break
    if frame is None:
        _broken(fmt, size, "no frame header before the image data")
        raise AssertionError  # pragma: no cover - _broken raises
    _check_eoi(data, fmt, size)
    if len(_KNOWN_HEADERS) < _MAX_KNOWN_HEADERS:
        _KNOWN_HEADERS[bytes(data[:pos])] = frame
    return frame


def _check_eoi(data: memoryview, fmt: str, size: int) -> None:
    if b"\xff\xd9" not in data[-_EOI_TAIL:].tobytes():
        _broken(fmt, size, "no end-of-image marker (cut short?)")


def check_png(buf: NDArray[np.uint8], fmt: str) -> None:
    """Raise :class:`DecodeError` unless every PNG chunk fits and the last one is IEND."""
    data = buf.data
    pos = len(_PNG_SIGNATURE)
    size = buf.size
    while pos + _PNG_CHUNK.size <= size:
        length, kind = _PNG_CHUNK.unpack_from(data, pos)
        pos += _PNG_CHUNK.size + length + 4  # data and CRC
        if pos > size:
            _broken(fmt, size, f"chunk {bytes(kind)!r} runs past the end of the data", codec="PNG")
        if kind == b"IEND":
            return
    _broken(fmt, size, "no IEND chunk (cut short?)", codec="PNG")


def _broken(fmt: str, size: int, why: str, *, codec: str = "JPEG") -> None:
    msg = f"corrupt {codec} compressed image ({fmt!r}, {size} bytes): {why}"
    raise DecodeError(msg)
