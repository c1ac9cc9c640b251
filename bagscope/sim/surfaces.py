"""What surfaces are: scenery classes, ground paint, reflectivity and colour.

The ground is the plane z = 0 and its class (road, lane marking, sidewalk, grass) is decided
from the hit point in road coordinates: cheaper and crisper than meshing paint. These tables
are shared by the lidar (reflectivity) and the camera (albedo), so both see the same world.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CLASS_REFL",
    "CLASS_RGB",
    "GROUND",
    "SCENERY_CLASSES",
    "SCENERY_ID",
    "hash01",
]

SCENERY_CLASSES: tuple[str, ...] = (
    "none",
    "ground",
    "road",
    "lane_marking",
    "sidewalk",
    "building",
    "pole",
    "barrier",
    "vegetation",
)
SCENERY_ID = {name: i for i, name in enumerate(SCENERY_CLASSES)}


def hash01(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Cheap deterministic per-cell noise in [0, 1): the texture of asphalt, grass and paint."""
    h = ix.astype(np.uint32) * np.uint32(73856093) ^ iy.astype(np.uint32) * np.uint32(19349663)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(65536.0)


def _mod(x: np.ndarray, period: float) -> np.ndarray:
    """``x mod period`` for positive periods: np.mod's sign handling costs 10x a floor."""
    return np.asarray(x - np.floor(x * np.float32(1.0 / period)) * np.float32(period))


def _stripe(v: np.ndarray, center: float, half_width: float) -> np.ndarray:
    return np.asarray(np.abs(np.abs(v) - np.float32(center)) < np.float32(half_width))


def _dashed(x: np.ndarray, on: float, period: float) -> np.ndarray:
    return np.asarray(_mod(x, period) < np.float32(on))


def _bands(au: np.ndarray, *edges: tuple[float, str]) -> np.ndarray:
    """Class by distance from the centre line: the first edge that ``au`` is below wins."""
    cls = np.full(au.shape, SCENERY_ID["ground"], np.int8)
    for edge, name in reversed(edges):
        np.copyto(cls, np.int8(SCENERY_ID[name]), where=au < np.float32(edge))
    return cls


_MARK = np.int8(SCENERY_ID["lane_marking"])


def _ground_urban(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    au = np.abs(u)
    cls = _bands(au, (7.2, "road"), (11.2, "sidewalk"))
    paint = (au < 0.12) | _stripe(u, 3.5, 0.075) | (_stripe(u, 5.0, 0.06) & _dashed(x, 2.0, 5.0))
    if crosswalks.size:
        j = np.clip(np.searchsorted(crosswalks, x), 1, crosswalks.size - 1)
        near = np.minimum(np.abs(x - crosswalks[j - 1]), np.abs(x - crosswalks[j]))
        paint |= (near < 2.0) & (au < 7.0) & (_mod(u, 1.0) < 0.5)
    np.copyto(cls, _MARK, where=paint & (au < 7.2))
    return cls


def _ground_highway(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    del crosswalks
    au = np.abs(u)
    cls = _bands(au, (13.6, "road"))
    dashes = (_stripe(u, 4.7, 0.075) | _stripe(u, 8.4, 0.075)) & _dashed(x, 3.0, 12.0)
    paint = _stripe(u, 1.05, 0.075) | _stripe(u, 12.15, 0.075) | dashes
    np.copyto(cls, _MARK, where=paint)
    return cls


def _ground_parking(x: np.ndarray, u: np.ndarray, crosswalks: np.ndarray) -> np.ndarray:
    del crosswalks
    au = np.abs(u)
    cls = _bands(au, (26.0, "road"), (29.0, "sidewalk"))
    in_rows = ((au > 3.5) & (au < 13.5)) | ((au > 20.5) & (au < 25.5))
    bay_lines = in_rows & (_mod(x + np.float32(1.3), 2.6) < 0.1)
    np.copyto(cls, _MARK, where=bay_lines | _stripe(u, 8.5, 0.05))
    return cls


GROUND = {"urban": _ground_urban, "highway": _ground_highway, "parking": _ground_parking}
# Lidar reflectivity (near infrared) and albedo (sRGB-ish, linear 0..1) per scenery class.
CLASS_REFL = np.array([0.0, 0.35, 0.1, 0.7, 0.25, 0.35, 0.45, 0.5, 0.5], np.float32)
CLASS_RGB = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.28, 0.42, 0.18],
        [0.22, 0.22, 0.23],
        [0.92, 0.92, 0.88],
        [0.62, 0.6, 0.57],
        [0.7, 0.7, 0.7],
        [0.35, 0.36, 0.38],
        [0.66, 0.66, 0.64],
        [0.25, 0.45, 0.18],
    ],
    np.float32,
)
