"""``project_to_camera``: lidar points drawn into the synced camera images.

Each point set is moved into a camera's optical frame through TF and projected with the
camera's own calibrated model (distortion included), so an overlay shows exactly where the
calibration says a return is. The camera and the lidar rarely fire at the same instant: when a
world-fixed frame (``odom``) is known, points go out to it at the cloud's stamp and back into
the camera at the image's stamp (tf2's "time travel" lookup), so ego motion between the two
stamps does not shift the overlay. Without one, the cloud's stamp is used for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import ModelInputError, PointSet, Projection, points_from
from bagscope.pipeline.shards import ColumnShards
from bagscope.pipeline.stage import Check, StageResult, Status
from bagscope.replay.errors import TransformError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.replay.decode import CameraModel
    from bagscope.replay.frame import Frame
    from bagscope.replay.tf import TfView

__all__ = ["ProjectToCamera", "depth_colors", "overlay"]

# A short perceptual ramp (near = warm, far = cool), linearly interpolated: enough for an
# overlay, and no Matplotlib import on the replay path.
_RAMP = np.array(
    [
        [180, 4, 38],
        [244, 109, 67],
        [254, 224, 144],
        [171, 217, 233],
        [69, 117, 180],
        [49, 54, 149],
    ],
    dtype=np.float64,
)


def depth_colors(
    depth: NDArray[np.float64], *, max_depth: float | None = None
) -> NDArray[np.uint8]:
    """(M, 3) uint8 RGB for depths: red near, through yellow, to blue at ``max_depth`` (default
    the largest depth given)."""
    d = np.asarray(depth, dtype=np.float64).reshape(-1)
    if d.size == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    top = float(max_depth) if max_depth is not None else float(np.max(d))
    t = np.clip(d / top, 0.0, 1.0) if top > 0 else np.zeros_like(d)
    pos = t * (len(_RAMP) - 1)
    lo = np.minimum(pos.astype(np.int64), len(_RAMP) - 2)
    frac = (pos - lo)[:, None]
    rgb = _RAMP[lo] * (1.0 - frac) + _RAMP[lo + 1] * frac
    out: NDArray[np.uint8] = np.rint(rgb).astype(np.uint8)
    return out


def overlay(
    frame: Frame,
    projection: Projection,
    *,
    radius: int = 1,
    max_depth: float | None = None,
) -> NDArray[np.uint8]:
    """The projection's image (RGB uint8, a copy) with each point drawn as a square of side
    ``2 * radius - 1`` coloured by depth; where points overlap the nearest one shows."""
    pixels = np.asarray(frame.images[projection.topic].pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    image = _to_uint8(pixels[:, :, :3]).copy()
    height, width = image.shape[:2]
    if len(projection.depth) == 0:
        return image
    colors = depth_colors(projection.depth, max_depth=max_depth)
    u = np.floor(projection.pixels[:, 0]).astype(np.int64)
    v = np.floor(projection.pixels[:, 1]).astype(np.int64)
    depth = projection.depth
    reach = max(int(radius), 1) - 1
    if reach > 0:
        offsets = np.arange(-reach, reach + 1)
        du, dv = (g.reshape(-1) for g in np.meshgrid(offsets, offsets))
        u = (u[:, None] + du[None, :]).reshape(-1)
        v = (v[:, None] + dv[None, :]).reshape(-1)
        colors = np.repeat(colors, len(du), axis=0)
        depth = np.repeat(depth, len(du))
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, colors, depth = u[inside], v[inside], colors[inside], depth[inside]
    # Nearest point per pixel: sort by (pixel, depth) and keep each pixel's first entry.
    flat = v * width + u
    order = np.lexsort((depth, flat))
    flat_sorted = flat[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = flat_sorted[1:] != flat_sorted[:-1]
    keep = order[first]
    image[v[keep], u[keep]] = colors[keep]
    return image


def _to_uint8(pixels: NDArray[np.generic]) -> NDArray[np.uint8]:
    if pixels.dtype == np.uint8:
        return np.asarray(pixels, dtype=np.uint8)
    values = pixels.astype(np.float64)
    top = float(np.nanmax(values)) if values.size else 0.0
    if top > 0:
        values = values * (255.0 / top)
    return np.clip(np.nan_to_num(values), 0, 255).astype(np.uint8)


class ProjectToCamera(ColumnShards):
    """Project a point set into every synced camera image (or those named in ``images``).

    Output: ``{image topic: Projection}``; points behind the camera, beyond ``max_depth`` or
    outside the image are left out. A frame where TF cannot connect the two sensors gets no
    entry for that image (counted, and reported by the check at the end).
    """

    # per-frame (per-message) columns: a long log's time shards are merged by joining them
    shard_fields = ("_frames", "_counts", "_stamps", "_no_tf", "_no_camera")

    def __init__(
        self,
        *,
        name: str | None = None,
        input: str | None = None,
        images: list[str] | None = None,
        max_depth: float | None = None,
        fixed_frame: str | None = "odom",
    ) -> None:
        self.name = name or "project_to_camera"
        if input is not None and not isinstance(input, str):
            msg = f"input must be a stage name or a cloud topic, got {input!r}"
            raise BagscopeError(msg)
        if images is not None and (
            isinstance(images, str) or not all(isinstance(t, str) for t in images)
        ):
            msg = f"images must be a list of image topics, got {images!r}"
            raise BagscopeError(msg)
        if max_depth is not None and (
            isinstance(max_depth, bool)
            or not isinstance(max_depth, int | float)
            or not max_depth > 0
        ):
            msg = f"max_depth must be a positive number of metres, got {max_depth!r}"
            raise BagscopeError(msg)
        if fixed_frame is not None and not isinstance(fixed_frame, str):
            msg = f"fixed_frame must be a frame id, got {fixed_frame!r}"
            raise BagscopeError(msg)
        self.input = input
        self.images = None if images is None else list(images)
        self.max_depth = None if max_depth is None else float(max_depth)
        self.fixed_frame = fixed_frame or None
        self._frames = 0
        self._counts: dict[str, list[int]] = {}  # topic -> points in image per frame
        self._stamps: dict[str, list[int]] = {}
        self._no_tf: dict[str, int] = {}
        self._no_camera: dict[str, int] = {}

    def _topics(self, frame: Frame) -> list[str]:
        if self.images is None:
            return [t for t in frame.images if t in frame.cameras]
        out = []
        for topic in self.images:
            match = next(
                (t for t in frame.images if t == topic or t.lstrip("/") == topic.lstrip("/")),
                None,
            )
            if match is None:
                msg = f"images: {topic!r} is not a synced image topic; have {list(frame.images)}"
                raise ModelInputError(msg)
            out.append(match)
        return out

    def process(self, frame: Frame) -> dict[str, Projection]:
        points = points_from(frame, self.input)
        self._frames += 1
        out: dict[str, Projection] = {}
        for topic in self._topics(frame):
            camera = frame.cameras.get(topic)
            if camera is None or not camera.is_calibrated:
                self._no_camera[topic] = self._no_camera.get(topic, 0) + 1
                continue
            if frame.tf is None:
                msg = "project_to_camera needs TF to place the points in the camera; log has none"
                raise ModelInputError(msg)
            try:
                matrix = self._camera_from_points(
                    frame.tf,
                    points,
                    camera=camera,
                    image_ns=frame.stamps_ns.get(topic, points.stamp_ns),
                )
            except TransformError:
                self._no_tf[topic] = self._no_tf.get(topic, 0) + 1
                continue
            projection = project_points(
                points.xyz, matrix=matrix, camera=camera, topic=topic, max_depth=self.max_depth
            )
            out[topic] = projection
            self._counts.setdefault(topic, []).append(len(projection.depth))
            self._stamps.setdefault(topic, []).append(frame.t_ns)
        return out

    def _camera_from_points(
        self, tf: TfView, points: PointSet, *, camera: CameraModel, image_ns: int
    ) -> NDArray[np.float64]:
        if self.fixed_frame is not None and image_ns != points.stamp_ns:
            try:
                world_from_points = tf.lookup(self.fixed_frame, points.frame_id, points.stamp_ns)
                camera_from_world = tf.lookup(camera.frame_id, self.fixed_frame, image_ns)
            except TransformError:
                pass  # no fixed frame in this log: fall back to the cloud's stamp
            else:
                out: NDArray[np.float64] = camera_from_world @ world_from_points
                return out
        return tf.lookup(camera.frame_id, points.frame_id, points.stamp_ns)

    def finish(self) -> StageResult:
        result = StageResult()
        topics = sorted({*self._counts, *self._no_tf, *self._no_camera})
        for topic in topics:
            counts = self._counts.get(topic, [])
            result.metrics.extend(
                "points_in_image", self._stamps.get(topic, []), counts, topic=topic
            )
            result.metrics.add("frames_projected", len(counts), topic=topic)
            result.metrics.add("frames_without_tf", self._no_tf.get(topic, 0), topic=topic)
            result.metrics.add(
                "frames_without_camera_info", self._no_camera.get(topic, 0), topic=topic
            )
            missing = self._no_tf.get(topic, 0) + self._no_camera.get(topic, 0)
            empty = sum(1 for c in counts if c == 0)
            mean = float(np.mean(counts)) if counts else 0.0
            status: Status = "pass" if not counts or (missing == 0 and empty == 0) else "warn"
            if not counts:
                status = "fail"
            result.checks.append(
                Check(
                    name="points projected",
                    topic=topic,
                    status=status,
                    value=(
                        f"{mean:.0f} points/frame; {empty} empty, {missing} not projected "
                        f"(no TF {self._no_tf.get(topic, 0)}, no camera info "
                        f"{self._no_camera.get(topic, 0)})"
                    ),
                    threshold="> 0 points in every frame",
                    stage=self.name,
                )
            )
        if not topics and self._frames:
            result.checks.append(
                Check(
                    name="points projected",
                    topic=None,
                    status="skip",
                    value="no synced image with a camera model",
                    threshold="an image topic and its CameraInfo among the synced topics",
                    stage=self.name,
                )
            )
        return result


def project_points(
    xyz: NDArray[np.floating],
    *,
    matrix: NDArray[np.float64],
    camera: CameraModel,
    topic: str,
    max_depth: float | None = None,
) -> Projection:
    """Project ``xyz`` (rows of a point set) with ``matrix`` (camera optical frame from the
    points' frame): the rows in front of the camera, within ``max_depth`` and inside the image."""
    pts = np.asarray(xyz, dtype=np.float64)
    cam = pts @ matrix[:3, :3].T + matrix[:3, 3]
    depth = cam[:, 2]
    keep = depth > 0
    if max_depth is not None:
        keep &= depth <= max_depth
    rows = np.flatnonzero(keep)
    pixels, valid = camera.project(cam[rows])
    rows = rows[valid]
    return Projection(
        topic=topic,
        width=int(camera.width),
        height=int(camera.height),
        pixels=pixels[valid],
        depth=depth[rows],
        index=rows.astype(np.int64),
    )
