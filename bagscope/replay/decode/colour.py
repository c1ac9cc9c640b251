"""Pixel-format conversions to RGB: channel swaps, Bayer demosaic, packed 4:2:2 YUV.

OpenCV is not a dependency, so these are written in numpy. Each converts a whole image with a
handful of full-array passes; loops over pixels would cost seconds per frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


def reorder_channels(view: NDArray[Any], order: tuple[int, ...]) -> NDArray[Any]:
    """Copy channels into a new C-contiguous array in ``order``.

    One strided copy per channel: fancy indexing (``view[..., order]``) yields a channel-major
    layout whose conversion to C order is an order of magnitude slower.
    """
    out = np.empty(view.shape, dtype=view.dtype)
    for target, source in enumerate(order):
        out[..., target] = view[..., source]
    return out


def demosaic_bilinear(raw: NDArray[Any], *, pattern: str) -> NDArray[Any]:
    """Bilinear demosaic of a ``(H, W)`` Bayer mosaic into ``(H, W, 3)`` RGB of the same type.

    ``pattern`` names the colours of the top-left 2×2 cell in row order (``"rggb"`` ...). Each
    missing colour is the mean of its nearest samples: the 4 edge or 4 diagonal neighbours at
    red/blue sites, the 2 horizontal or 2 vertical ones at green sites. Mirroring the border
    (``reflect``, which keeps the Bayer parity) makes edge pixels use the samples they have.
    Sums are exact integers, so a flat colour comes out exactly.
    """
    rows, cols = raw.shape
    acc = np.uint32 if raw.dtype.itemsize > 1 else np.uint16
    padded: NDArray[np.unsignedinteger[Any]] = raw.astype(acc)
    for axis, size in enumerate((rows, cols)):
        pad_width = [(0, 0), (0, 0)]
        pad_width[axis] = (1, 1)
        padded = np.pad(padded, pad_width, mode="reflect" if size > 1 else "edge")
    up, down = padded[:-2, 1:-1], padded[2:, 1:-1]
    left, right = padded[1:-1, :-2], padded[1:-1, 2:]
    vertical = up + down
    horizontal = left + right
    cross = (vertical + horizontal + 2) >> 2
    diagonal = (padded[:-2, :-2] + padded[:-2, 2:] + padded[2:, :-2] + padded[2:, 2:] + 2) >> 2
    vertical = (vertical + 1) >> 1
    horizontal = (horizontal + 1) >> 1
    out = np.empty((rows, cols, 3), dtype=raw.dtype)
    for index, colour in enumerate(pattern):
        r0, c0 = divmod(index, 2)
        site = (slice(r0, None, 2), slice(c0, None, 2))
        if colour == "g":
            # A green site's row holds the colour of its horizontal neighbours.
            row_colour = pattern[2 * r0 + (1 - c0)]
            other = "b" if row_colour == "r" else "r"
            out[(*site, "rgb".index(row_colour))] = horizontal[site]
            out[(*site, "rgb".index(other))] = vertical[site]
            out[(*site, 1)] = raw[site]
        else:
            other = "b" if colour == "r" else "r"
            out[(*site, "rgb".index(colour))] = raw[site]
            out[(*site, 1)] = cross[site]
            out[(*site, "rgb".index(other))] = diagonal[site]
    return out


# BT.601 "video range" YUV -> RGB, the coefficients OpenCV (and so cv_bridge) uses for 4:2:2,
# as 16.16 fixed-point lookup tables: every input is a byte, so each term is one table lookup.
_FRACTION_BITS = 16
_ONE = 1 << _FRACTION_BITS
_BYTE = np.arange(256, dtype=np.float64)


def _table(scale: float, offset: float, bias: int = 0) -> NDArray[np.int32]:
    return (np.rint(scale * (_BYTE - offset) * _ONE) + bias).astype(np.int32)


_Y_TABLE = _table(1.164, 16.0, bias=_ONE // 2)  # the bias rounds to nearest on the final shift
_V_TO_R = _table(1.596, 128.0)
_U_TO_G = _table(-0.391, 128.0)
_V_TO_G = _table(-0.813, 128.0)
_U_TO_B = _table(2.018, 128.0)


def yuv422_to_rgb(packed: NDArray[np.uint8], *, luma_first: bool) -> NDArray[np.uint8]:
    """Packed 4:2:2 ``(H, W, 2)`` (UYVY, or YUYV when ``luma_first``) to ``(H, W, 3)`` RGB.

    Each pixel pair shares one U (on the even pixel's chroma byte) and one V (on the odd one's),
    so the chroma terms are looked up once per pair and added to both of its pixels.
    """
    rows, cols, _ = packed.shape
    luma = packed[..., 0 if luma_first else 1]
    chroma = packed[..., 1 if luma_first else 0]
    u, v = chroma[:, 0::2], chroma[:, 1::2]
    chroma_terms = (_V_TO_R[v], _U_TO_G[u] + _V_TO_G[v], _U_TO_B[u])
    out = np.empty((rows, cols, 3), dtype=np.uint8)
    # Even and odd pixels separately: numpy is slow when broadcasting over a length-2 axis.
    for first in (0, 1):
        y = _Y_TABLE[luma[:, first::2]]
        for channel, term in enumerate(chroma_terms):
            value = y + term
            np.clip(value, 0, 255 << _FRACTION_BITS, out=value)
            value >>= _FRACTION_BITS
            out[:, first::2, channel] = value
    return out
