"""``build_scene``: one frame (plus its stage outputs and the log's TF) as a :class:`Scene`.

Everything is moved into one common frame here, once, with the same TF lookups a stage would
make (a cloud at its own stamp, an image at its own), so the interactive viewer and the
headless renderer only draw primitives and can never disagree on where a box is. Camera
panels get their overlays drawn here too, in numpy, for the same reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.models.projection import overlay, project_points
from bagscope.models.records import Projection
from bagscope.replay.decode.boxes import Boxes, class_color
from bagscope.replay.errors import TransformError
from bagscope.viz.view import (
    AxesLayer,
    BoxLayer,
    CameraPanel,
    LineLayer,
    PointLayer,
    Scene,
    ViewError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from bagscope.replay.decode import CameraModel, PointCloud
    from bagscope.replay.frame import Frame
    from bagscope.replay.tf import TfView
    from bagscope.viz.view import ViewSpec

__all__ = [
    "BOX_EDGES",
    "EGO_FRAME",
    "TRUTH_COLOR",
    "box_corners",
    "build_scene",
    "class_color",
    "colormap",
    "draw_box_edges",
    "match_topic",
]

EGO_FRAME = "base_link"
TRUTH_COLOR = (0.2, 0.85, 0.25)
TRAIL_COLOR = (1.0, 0.85, 0.1)
# The 12 edges of a box's 8 corners (bottom face 0-3, top face 4-7).
BOX_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 0),
    (4, 5), (5, 6), (6, 7), (7, 4),
    (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip
_NEAR_M = 0.1  # box edges closer to the camera than this are clipped
_TRAIL_STEP_NS = 100_000_000
_HEIGHT_SPAN_M = (-0.5, 3.0)  # height colours: fixed, relative to the ego, so videos do not flicker
_RANGE_SPAN_M = 60.0


def _turbo_table() -> NDArray[np.float32]:
    """256 RGB entries of Google's Turbo colormap (its published polynomial fit): perceptually
    ordered like viridis but with more contrast, and no Matplotlib import on the replay path."""
    x = np.linspace(0.0, 1.0, 256)
    powers = np.stack([x**k for k in range(6)], axis=1)
    coeff = np.array(
        [
            [0.13572138, 0.09140261, 0.10667330],
            [4.61539260, 2.19418839, 12.64194608],
            [-42.66032258, 4.84296658, -60.58204836],
            [132.13108234, -14.18503333, 110.36276771],
            [-152.94239396, 4.27729857, -89.90310912],
            [59.28637943, 2.82956604, 27.34824973],
        ]
    )
    out: NDArray[np.float32] = np.clip(powers @ coeff, 0.0, 1.0).astype(np.float32)
    return out


_TURBO = _turbo_table()


def colormap(values: NDArray[Any], *, lo: float, hi: float) -> NDArray[np.float32]:
    """(N, 3) float32 RGB in [0, 1] for ``values`` mapped linearly from [lo, hi] onto Turbo
    (clipped at both ends; NaN maps to the low end)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    span = hi - lo
    t = (v - lo) / span if span > 0 else np.zeros_like(v)
    idx = np.clip(np.nan_to_num(t) * 255.0, 0.0, 255.0).astype(np.int64)
    out: NDArray[np.float32] = _TURBO[idx]
    return out


def match_topic(topic: str, topics: Sequence[str]) -> str | None:
    """``topic`` among ``topics``, with or without the leading slash."""
    return next((t for t in topics if t == topic or t.lstrip("/") == topic.lstrip("/")), None)


def box_corners(boxes: Boxes) -> NDArray[np.float64]:
    """(N, 8, 3) corners: the footprint (counter-clockwise) at centre z - h/2, then at + h/2."""
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 8, 3), dtype=np.float64)
    bev = boxes.corners_bev()
    z = boxes.centers[:, 2]
    half_h = boxes.sizes[:, 2] / 2
    out = np.empty((n, 8, 3), dtype=np.float64)
    out[:, :4, :2] = bev
    out[:, 4:, :2] = bev
    out[:, :4, 2] = (z - half_h)[:, None]
    out[:, 4:, 2] = (z + half_h)[:, None]
    return out


def _label(boxes: Boxes, i: int) -> str:
    parts = [boxes.labels[i] or "?"]
    if boxes.ids[i]:
        parts.append(boxes.ids[i])
    parts.append(f"{float(boxes.scores[i]):.2f}")
    return " ".join(parts)


# ------------------------------------------------------------------------------- the scene


def build_scene(
    frame: Frame,
    spec: ViewSpec,
    *,
    boxes: Sequence[str] = (),
    truth: str | None = None,
    trail: bool = True,
    panels: bool = True,
    log_start_ns: int | None = None,
    timings_ms: Mapping[str, float] | None = None,
) -> Scene:
    """The scene of ``frame`` as ``spec`` asks: clouds coloured by ``spec.color_by``, the
    ground-truth boxes of topic ``truth`` and the ``Boxes`` outputs of the stages named in
    ``boxes``, the ego pose and its trail, the sensors' axes and the camera panels, all in
    ``spec.fixed_frame`` (or the first cloud's frame when TF cannot reach it).

    ``panels=False`` skips the camera panels (no image decoded: a 3D-only render);
    ``log_start_ns`` lets the info say the time since the log's start; ``timings_ms`` (stage
    -> ms spent on this frame) is shown as given. Raises :class:`ViewError` for a camera view
    of a topic the frame has no image of, a colouring no cloud has, or a ``boxes`` name whose
    output is not boxes.
    """
    tf = frame.tf
    frame_id = _scene_frame(frame, spec.fixed_frame)
    ego = _pose(tf, frame_id, EGO_FRAME, t_ns=frame.t_ns)
    info: dict[str, Any] = {"frame_id": frame_id}
    if frame_id != spec.fixed_frame:
        info["note"] = f"TF cannot reach {spec.fixed_frame!r}: drawn in {frame_id!r}"

    layers = [_cloud_layer(frame, t, frame_id=frame_id, spec=spec, ego=ego) for t in frame.clouds]
    points = tuple(layer for layer in layers if layer is not None)
    box_sources = _box_sources(frame, boxes=boxes, truth=truth)
    box_layers = tuple(
        _box_layer(tf, name, b, frame_id=frame_id, is_truth=is_truth)
        for name, b, is_truth in box_sources
    )
    lines: tuple[LineLayer, ...] = ()
    if trail and spec.trail_s > 0 and tf is not None:
        path = _trail(tf, frame_id=frame_id, t_ns=frame.t_ns, seconds=spec.trail_s)
        if path is not None:
            lines = (LineLayer(name="trail", points=path, color=TRAIL_COLOR),)
    axes = _axes(frame, frame_id=frame_id)
    shown = _panels(frame, spec=spec, frame_id=frame_id, box_layers=box_layers) if panels else ()

    info.update(_info(frame, log_start_ns=log_start_ns, points=points, box_layers=box_layers))
    if timings_ms:
        info["timings_ms"] = dict(timings_ms)
        info["lines"].append(
            "stages: " + ", ".join(f"{k} {v:.1f} ms" for k, v in timings_ms.items())
        )
    return Scene(
        t_ns=frame.t_ns,
        index=frame.index,
        frame_id=frame_id,
        ego=ego,
        points=points,
        boxes=box_layers,
        lines=lines,
        axes=axes,
        panels=shown,
        info=info,
    )


def _scene_frame(frame: Frame, fixed: str) -> str:
    """``fixed`` when TF reaches it from the sensors, else the first cloud's (or camera's)
    frame: a log without TF is still drawn, in its sensor's frame."""
    sources = [c.frame_id for c in frame.clouds.values()] or [
        c.frame_id for c in frame.cameras.values()
    ]
    if frame.tf is not None and sources:
        stamp = next(iter(frame.stamps_ns.values()), frame.t_ns)
        try:
            frame.tf.lookup(fixed, sources[0], stamp)
        except TransformError:
            pass
        else:
            return fixed
    elif frame.tf is not None:
        return fixed
    return sources[0] if sources else fixed


def _pose(tf: TfView | None, target: str, source: str, *, t_ns: int) -> NDArray[np.float64]:
    if tf is None:
        return np.eye(4)
    try:
        return tf.lookup(target, source, t_ns)
    except TransformError:
        return np.eye(4)


def _cloud_layer(
    frame: Frame, topic: str, *, frame_id: str, spec: ViewSpec, ego: NDArray[np.float64]
) -> PointLayer | None:
    cloud = frame.clouds[topic]
    stamp = frame.stamps_ns.get(topic, frame.t_ns)
    mask = cloud.finite_mask
    local = np.asarray(cloud.xyz, dtype=np.float64)[mask]
    if cloud.frame_id == frame_id:
        matrix = np.eye(4)
    elif frame.tf is None:
        return None
    else:
        try:
            matrix = frame.tf.lookup(frame_id, cloud.frame_id, stamp)
        except TransformError:
            return None  # this sensor is not connected to the others: left out
    xyz = local @ matrix[:3, :3].T + matrix[:3, 3]
    colors = _colors(cloud, spec.color_by, local=local, xyz=xyz, mask=mask, ego=ego)
    return PointLayer(name=topic, xyz=xyz.astype(np.float32), colors=colors)


def _colors(
    cloud: PointCloud,
    color_by: str,
    *,
    local: NDArray[np.float64],
    xyz: NDArray[np.float64],
    mask: NDArray[np.bool_],
    ego: NDArray[np.float64],
) -> NDArray[np.float32]:
    if len(xyz) == 0:
        return np.zeros((0, 3), dtype=np.float32)
    if color_by == "height":
        base = float(ego[2, 3])
        return colormap(xyz[:, 2], lo=base + _HEIGHT_SPAN_M[0], hi=base + _HEIGHT_SPAN_M[1])
    if color_by == "range":
        return colormap(np.linalg.norm(local, axis=1), lo=0.0, hi=_RANGE_SPAN_M)
    if color_by not in cloud.field_names:
        fields = ", ".join(cloud.field_names)
        msg = f"cannot colour by {color_by!r}: the cloud's fields are {fields} (or height, range)"
        raise ViewError(msg)
    values = np.asarray(cloud.field(color_by), dtype=np.float64).reshape(-1)[mask]
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return colormap(values, lo=0.0, hi=1.0)
    if color_by == "ring":
        return colormap(values, lo=float(finite.min()), hi=float(finite.max()))
    lo = 0.0 if color_by == "intensity" else float(np.percentile(finite, 1))
    hi = float(np.percentile(finite, 99))
    return colormap(values, lo=lo, hi=hi if hi > lo else lo + 1.0)


def _box_sources(
    frame: Frame, *, boxes: Sequence[str], truth: str | None
) -> list[tuple[str, Boxes | None, bool]]:
    """(layer name, boxes or None when this frame has none, is truth) in drawing order."""
    out: list[tuple[str, Boxes | None, bool]] = []
    if truth is not None:
        topic = match_topic(truth, list(frame.messages))
        decoded = frame.messages[topic].decode() if topic is not None else None
        if decoded is not None and not isinstance(decoded, Boxes):
            msg = f"ground truth {truth!r} decodes to {type(decoded).__name__}, not boxes"
            raise ViewError(msg)
        out.append((f"truth:{topic or truth}", decoded, True))
    for name in boxes:
        value = frame.outputs.get(name)
        if value is not None and not isinstance(value, Boxes):
            msg = f"stage {name!r} outputs {type(value).__name__}, not boxes"
            raise ViewError(msg)
        out.append((f"stage:{name}", value, False))
    return out


def _box_layer(
    tf: TfView | None, name: str, boxes: Boxes | None, *, frame_id: str, is_truth: bool
) -> BoxLayer:
    empty = BoxLayer(
        name=name,
        corners=np.zeros((0, 8, 3)),
        colors=np.zeros((0, 3), np.float32),
        labels=(),
        truth=is_truth,
    )
    if boxes is None or len(boxes) == 0:
        return empty
    if boxes.frame_id != frame_id:
        if tf is None:
            return empty
        try:
            matrix = tf.lookup(frame_id, boxes.frame_id, boxes.stamp_ns)
        except TransformError:
            return empty
        boxes = boxes.transformed(matrix, frame_id=frame_id)
    n = len(boxes)
    if is_truth:
        colors = np.tile(np.asarray(TRUTH_COLOR, np.float32), (n, 1))
    else:
        colors = np.asarray([class_color(label) for label in boxes.labels], np.float32)
    return BoxLayer(
        name=name,
        corners=box_corners(boxes),
        colors=colors,
        labels=tuple(_label(boxes, i) for i in range(n)),
        truth=is_truth,
    )


def _root(tf: TfView, frame: str) -> str:
    seen = {frame}
    parent = tf.buffer.parent_of(frame)
    while parent is not None and parent not in seen:
        frame = parent
        seen.add(frame)
        parent = tf.buffer.parent_of(frame)
    return frame


def _trail(tf: TfView, *, frame_id: str, t_ns: int, seconds: float) -> NDArray[np.float64] | None:
    """The ego's positions over the last ``seconds`` (only where TF has samples), expressed
    in ``frame_id`` as it is at ``t_ns`` (so a base_link view shows the path behind)."""
    if EGO_FRAME not in tf.buffer.frames():
        return None
    root = _root(tf, EGO_FRAME)
    first, last = t_ns - round(seconds * 1e9), t_ns
    frame = EGO_FRAME
    while frame != root:  # clip to every moving edge's samples on the way up
        parent = tf.buffer.parent_of(frame)
        assert parent is not None
        span = tf.buffer.time_range(parent, frame)
        if span is not None:
            first, last = max(first, span[0]), min(last, span[1])
        frame = parent
    if last <= first:
        return None
    count = max(2, math.ceil((last - first) / _TRAIL_STEP_NS) + 1)
    times = np.linspace(first, last, count).round().astype(np.int64)
    try:
        poses = tf.lookup_many(root, EGO_FRAME, times)
        view_from_root = tf.lookup(frame_id, root, t_ns)
    except TransformError:
        return None
    out: NDArray[np.float64] = poses[:, :3, 3] @ view_from_root[:3, :3].T + view_from_root[:3, 3]
    return out


def _axes(frame: Frame, *, frame_id: str) -> tuple[AxesLayer, ...]:
    """The ego and each sensor's frame as axes (sensors at their own stamps)."""
    if frame.tf is None:
        return ()
    wanted: dict[str, int] = {EGO_FRAME: frame.t_ns}
    for topic, cloud in frame.clouds.items():
        wanted.setdefault(cloud.frame_id, frame.stamps_ns.get(topic, frame.t_ns))
    for topic, camera in frame.cameras.items():
        if camera.frame_id:
            wanted.setdefault(camera.frame_id, frame.stamps_ns.get(topic, frame.t_ns))
    poses: dict[str, NDArray[np.float64]] = {}
    for name, stamp in wanted.items():
        try:
            poses[name] = frame.tf.lookup(frame_id, name, stamp)
        except TransformError:
            continue
    return (AxesLayer(name="tf", poses=poses, length=1.0),) if poses else ()


# ------------------------------------------------------------------------------- camera panels


def _panels(
    frame: Frame, *, spec: ViewSpec, frame_id: str, box_layers: Sequence[BoxLayer]
) -> tuple[CameraPanel, ...]:
    topics = list(frame.images)
    wanted = spec.camera_topic
    if wanted is not None:
        match = match_topic(wanted, topics)
        if match is None:
            have = ", ".join(topics) or "none"
            msg = f"camera:{wanted}: not an image topic of this frame (image topics: {have})"
            raise ViewError(msg)
        topics = [match]
    return tuple(
        _panel(frame, topic, frame_id=frame_id, box_layers=box_layers, spec=spec)
        for topic in topics
    )


def _camera_from(
    tf: TfView,
    camera: CameraModel,
    *,
    source: str,
    source_ns: int,
    image_ns: int,
    world: str,
) -> NDArray[np.float64]:
    """Camera optical frame from ``source`` (at ``source_ns``), going through the world-fixed
    frame so the ego's motion between the two stamps does not shift the overlay."""
    if source_ns != image_ns and world not in (source, camera.frame_id):
        try:
            world_from_source = tf.lookup(world, source, source_ns)
            camera_from_world = tf.lookup(camera.frame_id, world, image_ns)
        except TransformError:
            pass
        else:
            out: NDArray[np.float64] = camera_from_world @ world_from_source
            return out
    return tf.lookup(camera.frame_id, source, source_ns)


def _panel(
    frame: Frame, topic: str, *, frame_id: str, box_layers: Sequence[BoxLayer], spec: ViewSpec
) -> CameraPanel:
    camera = frame.cameras.get(topic)
    pixels = np.asarray(frame.images[topic].pixels)
    if camera is None or not camera.is_calibrated or frame.tf is None:
        base = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
        return CameraPanel(topic=topic, image=np.ascontiguousarray(base[:, :, :3], np.uint8))
    image_ns = frame.stamps_ns.get(topic, frame.t_ns)
    world = _root(frame.tf, EGO_FRAME) if EGO_FRAME in frame.tf.buffer.frames() else frame_id
    projections = []
    for cloud_topic, cloud in frame.clouds.items():
        if not spec.shows(cloud_topic):
            continue
        try:
            matrix = _camera_from(
                frame.tf,
                camera,
                source=cloud.frame_id,
                source_ns=frame.stamps_ns.get(cloud_topic, frame.t_ns),
                image_ns=image_ns,
                world=world,
            )
        except TransformError:
            continue
        projections.append(
            project_points(cloud.xyz_finite, matrix=matrix, camera=camera, topic=topic)
        )
    merged = Projection(
        topic=topic,
        width=int(camera.width),
        height=int(camera.height),
        pixels=np.concatenate([p.pixels for p in projections]) if projections else np.zeros((0, 2)),
        depth=np.concatenate([p.depth for p in projections]) if projections else np.zeros(0),
        index=np.concatenate([p.index for p in projections])
        if projections
        else np.zeros(0, np.int64),
    )
    radius = 2 if camera.width >= 960 else 1
    image = overlay(frame, merged, radius=radius, max_depth=_RANGE_SPAN_M)
    drawn = 0
    for layer in box_layers:
        if len(layer.corners) == 0 or not spec.shows(layer.name):
            continue
        try:
            camera_from_scene = frame.tf.lookup(camera.frame_id, frame_id, image_ns)
        except TransformError:
            continue
        for corners, color in zip(layer.corners, layer.colors, strict=True):
            cam = corners @ camera_from_scene[:3, :3].T + camera_from_scene[:3, 3]
            rgb = np.rint(np.asarray(color) * 255).astype(np.uint8)
            if draw_box_edges(image, cam, camera=camera, color=rgb):
                drawn += 1
    return CameraPanel(topic=topic, image=image, points_drawn=len(merged.depth), boxes_drawn=drawn)


def draw_box_edges(
    image: NDArray[np.uint8],
    corners_cam: NDArray[np.float64],
    *,
    camera: CameraModel,
    color: NDArray[np.uint8],
    thickness: int = 2,
) -> bool:
    """Draw a box's 12 edges (corners in the camera's optical frame) into ``image`` in place,
    each clipped to depth > 0.1 m and sampled densely enough to be a continuous line through
    the lens's distortion; ``thickness`` px squares per sample. True when any pixel was drawn."""
    height, width = image.shape[:2]
    samples = []
    for i, j in BOX_EDGES:
        a, b = corners_cam[i].copy(), corners_cam[j].copy()
        if a[2] < _NEAR_M and b[2] < _NEAR_M:
            continue
        if a[2] < _NEAR_M or b[2] < _NEAR_M:
            s = (_NEAR_M - a[2]) / (b[2] - a[2])
            cut = a + s * (b - a)
            if a[2] < _NEAR_M:
                a = cut
            else:
                b = cut
        ends = np.stack([a, b])
        uv = ends[:, :2] / ends[:, 2:3] * np.array([camera.fx, camera.fy])
        length = float(np.hypot(*(uv[1] - uv[0])))
        count = int(min(max(2.0, math.ceil(length * 1.5) + 1), 4000))
        s = np.linspace(0.0, 1.0, count)[:, None]
        samples.append(a + s * (b - a))
    if not samples:
        return False
    pixels, valid = camera.project(np.concatenate(samples))
    if not valid.any():
        return False
    u = np.floor(pixels[valid, 0]).astype(np.int64)
    v = np.floor(pixels[valid, 1]).astype(np.int64)
    offsets = np.arange(thickness) - (thickness - 1) // 2
    du, dv = (g.reshape(-1) for g in np.meshgrid(offsets, offsets))
    uu = (u[:, None] + du[None, :]).reshape(-1)
    vv = (v[:, None] + dv[None, :]).reshape(-1)
    inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
    image[vv[inside], uu[inside]] = color
    return True


# ------------------------------------------------------------------------------- info


def _info(
    frame: Frame,
    *,
    log_start_ns: int | None,
    points: Sequence[PointLayer],
    box_layers: Sequence[BoxLayer],
) -> dict[str, Any]:
    stamps = {
        topic: {"stamp_ns": stamp, "skew_ms": (stamp - frame.t_ns) / 1e6}
        for topic, stamp in frame.stamps_ns.items()
    }
    since = None if log_start_ns is None else (frame.t_ns - log_start_ns) / 1e9
    lines = [
        f"frame {frame.index}  t = {frame.t_ns / 1e9:.3f}"
        + (f"  (+{since:.3f} s)" if since is not None else "")
    ]
    lines.extend(f"{topic}  {s['skew_ms']:+.1f} ms" for topic, s in stamps.items())
    lines.extend(f"{layer.name}: {len(layer.xyz)} points" for layer in points)
    lines.extend(f"{layer.name}: {len(layer.corners)} boxes" for layer in box_layers)
    return {
        "t_ns": frame.t_ns,
        "t_s": frame.t_ns / 1e9,
        "since_start_s": since,
        "index": frame.index,
        "stamps": stamps,
        "skew_ms": frame.skew_ns / 1e6,
        "points": {layer.name: len(layer.xyz) for layer in points},
        "boxes": {layer.name: len(layer.corners) for layer in box_layers},
        "sensors": {topic: cloud.frame_id for topic, cloud in frame.clouds.items()},
        "lines": lines,
    }
