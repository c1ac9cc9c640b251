"""sensor_msgs/CameraInfo as a :class:`CameraModel` that projects and unprojects points.

Lidar-to-camera overlays and the simulator both need the exact model the driver calibrated, so
projection follows OpenCV's ``projectPoints`` (rvec = tvec = 0, camera matrix ``K``) for the
models ROS names: ``plumb_bob`` / ``rational_polynomial`` (one OpenCV coefficient vector
``k1 k2 p1 p2 k3 k4 k5 k6 s1 s2 s3 s4``, missing entries zero) and ``equidistant`` (OpenCV's
fisheye model). A polynomial model folds back on itself far outside the calibrated field of
view; points beyond that fold would land inside the image as ghosts, so they are marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.stamp import header_fields
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]

_PINHOLE_MODELS = frozenset({"plumb_bob", "rational_polynomial"})
_FISHEYE_MODELS = frozenset({"equidistant", "fisheye"})
_NO_DISTORTION_MODELS = frozenset({"", "none"})
# How far out (in normalised radius / fisheye angle) to look for the fold of the polynomial.
_FOLD_SEARCH_RADIUS = 50.0  # about 88.9° off axis
_FOLD_SAMPLES = 20001
_NEWTON_ITERATIONS = 50
_NEWTON_TOLERANCE = 1e-14
_CONVERGED = 1e-9


def _readonly(values: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    array = np.array(values, dtype=np.float64).reshape(shape)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CameraModel:
    """A calibrated camera: intrinsics ``K``, distortion ``D``, rectification ``R``, ``P``.

    Binning and ROI are ignored. Arrays are float64 and read-only.
    """

    frame_id: str
    width: int
    height: int
    distortion_model: str
    K: FloatArray
    D: FloatArray
    R: FloatArray
    P: FloatArray
    _kind: str = field(init=False, repr=False)
    _coefficients: tuple[float, ...] = field(init=False, repr=False)
    _max_radius: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapes = {"K": (3, 3), "R": (3, 3), "P": (3, 4)}
        for name, shape in shapes.items():
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.size != shape[0] * shape[1]:
                msg = f"camera {name} has {values.size} values, expected {shape[0] * shape[1]}"
                raise DecodeError(msg)
            object.__setattr__(self, name, _readonly(values, shape))
        distortion = np.asarray(self.D, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "D", _readonly(distortion, distortion.shape))
        kind = _model_kind(self.distortion_model, distortion)
        coefficients = _padded(distortion, 4 if kind == "fisheye" else 12)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_coefficients", coefficients)
        object.__setattr__(self, "_max_radius", _fold_radius(kind, coefficients))

    @classmethod
    def from_intrinsics(
        cls,
        *,
        width: int,
        height: int,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        D: Sequence[float] | ArrayLike = (),  # noqa: N803 - ROS's own name
        distortion_model: str = "plumb_bob",
        frame_id: str = "",
    ) -> CameraModel:
        """A model from pinhole intrinsics; ``R = I`` and ``P = [K | 0]`` as for a mono camera."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(
            frame_id=frame_id,
            width=width,
            height=height,
            distortion_model=distortion_model,
            K=k,
            D=np.asarray(D, dtype=np.float64),
            R=np.eye(3),
            P=np.hstack([k, np.zeros((3, 1))]),
        )

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def is_calibrated(self) -> bool:
        """False for the all-zero ``K`` that uncalibrated drivers publish."""
        return self.fx > 0 and self.fy > 0

    @property
    def max_radius(self) -> float:
        """Normalised radius ``hypot(x/z, y/z)`` beyond which the distortion folds (may be inf)."""
        return self._max_radius

    def distort(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Apply the distortion to normalised coordinates ``(x/z, y/z)``."""
        return _distort(x, y, kind=self._kind, coefficients=self._coefficients)

    def project(self, points: ArrayLike) -> tuple[FloatArray, NDArray[np.bool_]]:
        """Project ``(N, 3)`` points given in the camera frame to ``(N, 2)`` pixels ``(u, v)``.

        ``valid`` is True where the point is in front of the camera (z > 0), inside the distortion
        model's unfolded range, and ``0 <= u < width``, ``0 <= v < height`` (so that
        ``pixels[valid].astype(int)`` indexes the image). Points with z <= 0 get NaN pixels.
        """
        xyz = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        z = xyz[:, 2]
        front = z > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(front, xyz[:, 0] / z, np.nan)
            y = np.where(front, xyz[:, 1] / z, np.nan)
        xd, yd = self.distort(x, y)
        k = self.K
        u = k[0, 0] * xd + k[0, 1] * yd + k[0, 2]
        v = k[1, 1] * yd + k[1, 2]
        with np.errstate(invalid="ignore"):
            unfolded = x * x + y * y < self._max_radius**2
            inside = (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return np.stack([u, v], axis=1), front & unfolded & inside

    def undistort_points(self, pixels: ArrayLike) -> FloatArray:
        """Rays ``(N, 3)`` = ``(x, y, 1)`` through ``(N, 2)`` pixels, inverting the distortion.

        Scale a ray by a depth to get the 3D point at that depth; ``project`` of a ray gives the
        pixel back. Newton's method inverts the distortion; pixels it cannot invert (beyond the
        fold of the model) get NaN rays.
        """
        uv = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        k = self.K
        with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero K gives NaN rays
            yd = (uv[:, 1] - k[1, 2]) / k[1, 1]
            xd = (uv[:, 0] - k[0, 2] - k[0, 1] * yd) / k[0, 0]
        x, y = self._invert(xd, yd)
        return np.stack([x, y, np.ones_like(x)], axis=1)

    def _invert(self, xd: FloatArray, yd: FloatArray) -> tuple[FloatArray, FloatArray]:
        if self._kind == "none":
            return xd.copy(), yd.copy()
        x, y = xd.copy(), yd.copy()
        eps = 1e-7
        for _ in range(_NEWTON_ITERATIONS):
            fx, fy = self.distort(x, y)
            ex, ey = fx - xd, fy - yd
            if not np.nanmax(np.abs(np.concatenate([ex, ey])), initial=0.0) > _NEWTON_TOLERANCE:
                break
            # Central-difference Jacobian: exact enough for Newton and model-agnostic.
            xp, yp = self.distort(x + eps, y)
            xm, ym = self.distort(x - eps, y)
            a, c = (xp - xm) / (2 * eps), (yp - ym) / (2 * eps)
            xp, yp = self.distort(x, y + eps)
            xm, ym = self.distort(x, y - eps)
            b, d = (xp - xm) / (2 * eps), (yp - ym) / (2 * eps)
            with np.errstate(divide="ignore", invalid="ignore"):
                det = a * d - b * c
                x = x - (d * ex - b * ey) / det
                y = y - (a * ey - c * ex) / det
        fx, fy = self.distort(x, y)
        with np.errstate(invalid="ignore"):
            bad = ~(np.hypot(fx - xd, fy - yd) < _CONVERGED) | ~(
                x * x + y * y < self._max_radius**2
            )
        x[bad] = np.nan
        y[bad] = np.nan
        return x, y


def _padded(values: FloatArray, size: int) -> tuple[float, ...]:
    out = np.zeros(size)
    count = min(size, values.size)
    out[:count] = values[:count]
    return tuple(float(v) for v in out)


def _distort(
    x: FloatArray, y: FloatArray, *, kind: str, coefficients: tuple[float, ...]
) -> tuple[FloatArray, FloatArray]:
    if kind == "none":
        return x, y
    if kind == "fisheye":
        k1, k2, k3, k4 = coefficients
        r = np.hypot(x, y)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(r > 1e-12, theta_d / r, 1.0)
        return x * scale, y * scale
    k1, k2, p1, p2, k3, k4, k5, k6, s1, s2, s3, s4 = coefficients
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xy = x * y
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x * x) + r2 * (s1 + s2 * r2)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * xy + r2 * (s3 + s4 * r2)
    return xd, yd


@lru_cache(maxsize=256)
def _fold_radius(kind: str, coefficients: tuple[float, ...]) -> float:
    """Smallest normalised radius where the radial mapping stops increasing (inf if never).

    Only the radial part can fold (tangential and thin-prism terms shift points), so it is
    sampled along the x axis with those terms off. Cached: a camera publishes the same
    calibration with every frame.
    """
    if kind == "none":
        return float("inf")
    if kind == "fisheye":
        r = np.tan(np.linspace(0.0, np.pi / 2, _FOLD_SAMPLES)[:-1])
        radial_only = coefficients
    else:
        r = np.linspace(0.0, _FOLD_SEARCH_RADIUS, _FOLD_SAMPLES)
        k1, k2, _, _, k3, k4, k5, k6, *_ = coefficients
        radial_only = (k1, k2, 0.0, 0.0, k3, k4, k5, k6, 0.0, 0.0, 0.0, 0.0)
    distorted, _ = _distort(r, np.zeros_like(r), kind=kind, coefficients=radial_only)
    rising = np.diff(distorted) > 0
    if rising.all():
        return float("inf")
    return float(r[int(np.argmin(rising))])


def _model_kind(model: str, distortion: FloatArray) -> str:
    key = model.strip().lower()
    if not np.any(distortion):
        return "none"
    if key in _PINHOLE_MODELS:
        return "pinhole"
    if key in _FISHEYE_MODELS:
        return "fisheye"
    if key in _NO_DISTORTION_MODELS:
        msg = f"camera has distortion coefficients but distortion model {model!r}"
        raise DecodeError(msg)
    msg = (
        f"unsupported distortion model {model!r} "
        "(expected plumb_bob, rational_polynomial or equidistant)"
    )
    raise DecodeError(msg)


def _field(msg: Any, name: str) -> Any:
    """rosbags keeps ROS1's upper-case CameraInfo names (``K``) and ROS2's lower-case (``k``)."""
    value = getattr(msg, name.lower(), None)
    return getattr(msg, name.upper()) if value is None else value


def decode_camera_info(msg: Any) -> CameraModel:
    """Decode a rosbags ``sensor_msgs/CameraInfo`` (ROS1 or ROS2 field names)."""
    _, frame_id = header_fields(msg)
    return CameraModel(
        frame_id=frame_id,
        width=int(msg.width),
        height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        K=_field(msg, "k"),
        D=_field(msg, "d"),
        R=_field(msg, "r"),
        P=_field(msg, "p"),
    )
