"""sensor_msgs/PointCloud2 as a zero-copy numpy structured view.

A lidar message is mostly one big byte buffer; copying it per frame is the single largest cost of
naive replay. The ``PointField`` list already describes a numpy structured dtype (names, offsets,
item size), so we build that dtype once per message and lay it over the buffer with strides: no
byte is copied until a caller asks for a contiguous ``xyz``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.cdr import check_cloud_sizes
from bagscope.replay.decode.stamp import header_fields
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

# PointField.datatype -> numpy type code (byte order is added per message).
POINTFIELD_DTYPES: Mapping[int, str] = MappingProxyType(
    {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
)
_FLOAT64 = 8


@dataclass(slots=True, kw_only=True, eq=False)
class PointCloud:
    """One decoded PointCloud2.

    ``points`` is a structured array *viewing* the message buffer (read-only when the buffer is):
    shaped ``(height, width)`` for organized clouds (``height > 1``) and ``(width,)`` otherwise, so
    that per-field arrays keep the sensor's image-like layout when it has one. ``xyz`` flattens to
    ``(N, 3)`` in row-major order: a view when x, y, z are adjacent native floats, else one copy.
    """

    frame_id: str
    stamp_ns: int
    height: int
    width: int
    is_dense: bool
    point_step: int
    row_step: int
    points: NDArray[np.void]
    _xyz: NDArray[np.floating[Any]] | None = field(default=None, init=False, repr=False)
    _fields: Mapping[str, NDArray[Any]] | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return self.height * self.width

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` as in the message, whatever the shape of ``points``."""
        return self.height, self.width

    @property
    def field_names(self) -> tuple[str, ...]:
        """The field names in message order."""
        names = self.points.dtype.names
        return tuple(names) if names is not None else ()

    @property
    def fields(self) -> Mapping[str, NDArray[Any]]:
        """Field name -> array view, shaped like ``points``.

        Shape is ``(height, width)`` for organized clouds and ``(N,)`` when ``height == 1``; a
        field with ``count > 1`` gains a trailing ``(count,)`` axis. Values are in native numbers
        but the arrays are still views, so a big-endian cloud reads correctly without a copy.
        """
        if self._fields is None:
            self._fields = MappingProxyType({n: self.points[n] for n in self.field_names})
        return self._fields

    def field(self, name: str) -> NDArray[Any]:
        """One field by name; a clear :class:`DecodeError` names the fields there are."""
        try:
            return self.fields[name]
        except KeyError:
            available = ", ".join(self.field_names) or "none"
            msg = f"point cloud has no field {name!r} (fields: {available})"
            raise DecodeError(msg) from None

    @property
    def xyz(self) -> NDArray[np.floating[Any]]:
        """``(N, 3)`` coordinates: float64 when ``x`` is FLOAT64, else float32 (read-only).

        When x, y, z sit side by side as native floats (how nearly every driver lays them out)
        this is a strided *view* over the message bytes: touching the coordinates of a 2 MB
        sweep then costs no copy at all. Other layouts (gaps, big-endian, mixed types) get one
        contiguous copy. NaNs are kept (organized clouds use them for "no return"); filter with
        :attr:`xyz_finite`. Computed once and cached.
        """
        if self._xyz is None:
            x, y, z = (self.field(n) for n in ("x", "y", "z"))
            if not x.shape == y.shape == z.shape == self.points.shape:
                msg = "point fields x, y, z must be scalars (count 1) to form xyz"
                raise DecodeError(msg)
            self._xyz = self._xyz_view(x) if self._adjacent_xyz() else self._xyz_copy(x, y, z)
        return self._xyz

    def _adjacent_xyz(self) -> bool:
        fields = self.points.dtype.fields
        if fields is None:
            return False
        (dx, ox), (dy, oy), (dz, oz) = (fields[n][:2] for n in ("x", "y", "z"))
        size = dx.itemsize
        return (
            dx == dy == dz
            and dx.kind == "f"
            and dx.isnative
            and oy == ox + size
            and oz == ox + 2 * size
            and (self.height <= 1 or self.row_step == self.width * self.point_step)
        )

    def _xyz_view(self, x: NDArray[Any]) -> NDArray[np.floating[Any]]:
        flat = x.reshape(-1)  # a view: rows are unpadded (checked in _adjacent_xyz)
        view: NDArray[np.floating[Any]] = np.lib.stride_tricks.as_strided(
            flat, shape=(len(flat), 3), strides=(flat.strides[0], flat.itemsize), writeable=False
        )
        return view

    def _xyz_copy(
        self, x: NDArray[Any], y: NDArray[Any], z: NDArray[Any]
    ) -> NDArray[np.floating[Any]]:
        dtype = np.float64 if x.dtype.kind == "f" and x.dtype.itemsize == 8 else np.float32
        out = np.empty((len(self), 3), dtype=dtype)
        for column, values in enumerate((x, y, z)):
            # Strided read + byte-swap + cast in one pass per column.
            out[:, column] = values.reshape(-1)
        out.flags.writeable = False
        return out

    @property
    def finite_mask(self) -> NDArray[np.bool_]:
        """``(N,)`` True where all of x, y, z are finite."""
        xyz = self.xyz
        # Per column: a reduction over a length-3 axis is ~20x slower in numpy.
        mask: NDArray[np.bool_] = np.isfinite(xyz[:, 0])
        mask &= np.isfinite(xyz[:, 1])
        mask &= np.isfinite(xyz[:, 2])
        return mask

    @property
    def xyz_finite(self) -> NDArray[np.floating[Any]]:
        """``xyz`` without the points that have a NaN or inf coordinate (no copy when none do)."""
        mask = self.finite_mask
        if mask.all():
            return self.xyz
        return np.compress(mask, self.xyz, axis=0)  # several times faster than xyz[mask]


def pointcloud_dtype(fields: Any, *, point_step: int, is_bigendian: bool) -> np.dtype[np.void]:
    """Build the structured dtype that ``fields`` describe (cached per layout: a sensor sends
    the same fields in every message, and building a dtype costs more than the rest of
    decoding a cloud)."""
    layout = tuple((str(f.name), int(f.offset), int(f.datatype), int(f.count)) for f in fields)
    return _layout_dtype(layout, point_step, is_bigendian)


@functools.lru_cache(maxsize=256)
def _layout_dtype(
    fields: tuple[tuple[str, int, int, int], ...], point_step: int, is_bigendian: bool
) -> np.dtype[np.void]:
    """The structured dtype that ``fields`` describe, padded to ``point_step``.

    Explicit offsets and ``itemsize`` let numpy skip padding between fields and after the last
    one, which is how most drivers align points to 16 or 32 bytes.
    """
    order = ">" if is_bigendian else "<"
    names: list[str] = []
    formats: list[Any] = []
    offsets: list[int] = []
    for name, field_offset, datatype, field_count in fields:
        code = POINTFIELD_DTYPES.get(datatype)
        if code is None:
            msg = f"point field {name!r} has unknown datatype {datatype} (expected 1..8)"
            raise DecodeError(msg)
        if name in names:
            msg = f"point field {name!r} appears twice"
            raise DecodeError(msg)
        # count 0 is written by some drivers to mean a scalar, as count 1 does.
        count = max(field_count, 1)
        scalar = np.dtype(order + code)
        end = field_offset + scalar.itemsize * count
        if end > point_step:
            msg = f"point field {name!r} ends at byte {end}, beyond point_step {point_step}"
            raise DecodeError(msg)
        names.append(name)
        formats.append(scalar if count == 1 else (scalar, (count,)))
        offsets.append(field_offset)
    spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    try:
        return np.dtype(spec)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError) as err:
        msg = f"point fields {names} do not form a valid point layout: {err}"
        raise DecodeError(msg) from err


def _as_bytes_array(data: Any) -> NDArray[np.uint8]:
    """The payload as a 1-D uint8 array sharing memory with ``data``."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def decode_pointcloud(msg: Any) -> PointCloud:
    """Decode a rosbags ``sensor_msgs/PointCloud2`` without copying its points."""
    stamp_ns, frame_id = header_fields(msg)
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    buf = _as_bytes_array(msg.data)
    check_cloud_sizes(
        height=height, width=width, point_step=point_step, row_step=row_step, size=buf.size
    )
    dtype = pointcloud_dtype(msg.fields, point_step=point_step, is_bigendian=bool(msg.is_bigendian))
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    if height == 1:
        shape, strides = (width,), (point_step,)
    else:
        shape, strides = (height, width), (row_step, point_step)
    if buf.size == 0:
        points = np.zeros(shape, dtype=dtype)
    else:
        points = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    return PointCloud(
        frame_id=frame_id,
        stamp_ns=stamp_ns,
        height=height,
        width=width,
        is_dense=bool(msg.is_dense),
        point_step=point_step,
        row_step=row_step,
        points=points,
    )
