"""Figures for looking at a log by eye: field time series, a frame from above, lidar on images.

Each function draws into an ``ax``/``fig`` you pass (so a notebook or a report can lay out
several) or makes its own through pyplot, which picks the notebook's inline backend or, on a
machine without a display, Agg. Matplotlib is imported inside the functions: importing
:mod:`bagscope.viz` costs nothing for the commands that never draw. The look (seconds from
the log start, units on every axis, the house colours) is :mod:`bagscope.analyzers.plotting`'s.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, style_axes
from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bagscope.models.records import PointSet
    from bagscope.replay.decode.boxes import Boxes
    from bagscope.replay.frame import Frame
    from bagscope.viz.series import Series

__all__ = [
    "PREDICTION_COLOURS",
    "TRUTH_COLOUR",
    "plot_bev",
    "plot_lidar_on_image",
    "plot_series",
    "series_groups",
    "time_origin",
]

TRUTH_COLOUR = "#54a24b"
PREDICTION_COLOURS = ("#e45756", "#f58518", "#b279a2", "#4c78a8")
EGO_COLOUR = "#222222"
DETECTIONS = "vision_msgs/msg/Detection3DArray"
# Header stamps further than this from the log's extent are on another clock (sim time, an
# unset clock): such series are plotted from their own first sample instead.
_SAME_CLOCK_NS = 3600 * 1_000_000_000
# Series with at most this many samples get a marker on each, so single samples show.
_MARKERS_UP_TO = 60


def _new_axes(*, figsize: tuple[float, float]) -> Axes:
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


# -- time series ------------------------------------------------------------------------------
def time_origin(series: Sequence[Series], *, start_ns: int, end_ns: int) -> tuple[int, str]:
    """``(origin_ns, x label)``: the log's start, unless a series' times are on another clock
    (header stamps hours away from the log times), then the earliest sample."""
    firsts = [int(s.times_ns.min()) for s in series if len(s)]
    lasts = [int(s.times_ns.max()) for s in series if len(s)]
    if not firsts or (
        min(firsts) >= start_ns - _SAME_CLOCK_NS and max(lasts) <= end_ns + _SAME_CLOCK_NS
    ):
        return start_ns, "time since log start (s)"
    return min(firsts), "time since first sample (s)"


def series_groups(series: Sequence[Series]) -> list[list[Series]]:
    """Series that share one axes: those with the same known unit; each other one alone.

    Same-unit fields (x, y, z of one vector) read best overlaid; different units or unknown
    ones get their own axes, stacked on the shared time axis.
    """
    groups: dict[str, list[Series]] = {}
    alone: list[list[Series]] = []
    order: list[list[Series]] = []
    for s in series:
        if s.unit is None:
            alone.append([s])
            order.append(alone[-1])
        elif s.unit in groups:
            groups[s.unit].append(s)
        else:
            groups[s.unit] = [s]
            order.append(groups[s.unit])
    return order


def _label(s: Series) -> str:
    return f"{s.name} ({s.unit})" if s.unit else s.name


def plot_series(
    series: Sequence[Series],
    *,
    ax: Axes | None = None,
    fig: Figure | None = None,
    origin_ns: int | None = None,
    xlabel: str = "time since log start (s)",
    title: str | None = None,
) -> Figure:
    """Draw ``series`` against seconds since ``origin_ns`` (default: the earliest sample).

    With ``ax``, every series goes onto that one axes; otherwise ``fig`` (a new pyplot figure
    when None) gets one axes per unit group (:func:`series_groups`), stacked with a shared time
    axis. The y label is the series' path with its unit; a legend appears where several share
    an axes. Returns the figure.
    """
    from bagscope.analyzers.plotting import seconds

    if origin_ns is None:
        origin_ns = min((int(s.times_ns.min()) for s in series if len(s)), default=0)
    colours = {id(s): TOPIC_COLOURS[i % len(TOPIC_COLOURS)] for i, s in enumerate(series)}
    if ax is not None:
        groups, axes = [list(series)], [ax]
        figure = ax.get_figure()
    else:
        groups = series_groups(series)
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(9, 1.2 + 2.2 * len(groups)), layout="constrained")
        shared = fig.subplots(len(groups), 1, sharex=True, squeeze=False)
        axes = list(shared[:, 0])
        figure = fig
    for group, axis in zip(groups, axes, strict=True):
        for s in group:
            marker = "o" if len(s) <= _MARKERS_UP_TO else None
            axis.plot(
                seconds(s.times_ns.tolist(), origin_ns),
                s.values,
                color=colours[id(s)],
                linewidth=1.1,
                marker=marker,
                markersize=2.5,
                label=s.name,
            )
        units = {s.unit for s in group}
        if len(group) == 1:
            ylabel = _label(group[0])
        else:
            unit = units.pop() if len(units) == 1 else None
            ylabel = f"value ({unit})" if unit else "value"
            legend(axis, fontsize=8, loc="best", frameon=False)
        style_axes(axis, xlabel="", ylabel=ylabel)
        axis.yaxis.label.set_fontsize(8 if len(ylabel) > 30 else 10)
    axes[-1].set_xlabel(xlabel)
    if title and figure is not None:
        if ax is not None:
            ax.set_title(title, fontsize=10, loc="left")
        else:
            figure.suptitle(title, fontsize=11, x=0.01, ha="left")
    if figure is None:  # pragma: no cover -- an axes always belongs to a figure
        raise BagscopeError("the axes belongs to no figure")
    return figure  # type: ignore[return-value]


# -- bird's-eye view --------------------------------------------------------------------------
def _same_frame(a: str, b: str) -> bool:
    return a.lstrip("/") == b.lstrip("/")


def _boxes_named(frame: Frame, name: str) -> Boxes:
    from bagscope.replay.decode.boxes import Boxes

    found: Any = frame.outputs.get(name)
    if found is None:
        for topic in frame.messages:
            if _same_frame(topic, name):
                found = frame.messages[topic].decode()
                break
    if isinstance(found, Boxes):
        return found
    if found is None:
        have = [k for k, v in frame.outputs.items() if isinstance(v, Boxes)]
        have += [t for t, m in frame.messages.items() if m.msgtype == DETECTIONS]
        msg = f"no boxes named {name!r} in this frame; have: {', '.join(have) or 'none'}"
        raise BagscopeError(msg)
    msg = f"{name!r} is a {type(found).__name__}, not boxes"
    raise BagscopeError(msg)


def _in_frame(frame: Frame, boxes: Boxes, frame_id: str) -> Boxes:
    """``boxes`` moved into ``frame_id`` through the frame's TF (as they are when already there)."""
    if not boxes.frame_id or _same_frame(boxes.frame_id, frame_id):
        return boxes
    if frame.tf is None:
        msg = f"boxes in {boxes.frame_id!r} cannot be drawn in {frame_id!r}: the log has no TF"
        raise BagscopeError(msg)
    matrix = frame.tf.lookup(frame_id, boxes.frame_id, boxes.stamp_ns)
    return boxes.transformed(matrix, frame_id=frame_id)


def plot_bev(
    frame: Frame,
    *,
    ax: Axes | None = None,
    cloud: str | PointSet | None = None,
    boxes: Sequence[str | Boxes] | None = None,
    truth: str | Boxes | Literal[False] | None = None,
    range_m: float = 50.0,
) -> Axes:
    """The frame from above, in the cloud's frame (the sensor at the origin), ``range_m`` each way.

    ``cloud``: a cloud topic or point stage of the frame, or a `PointSet` (default the first
    cloud); points are coloured by height. ``boxes``: predictions, as names of
    ``frame.outputs`` or `Boxes` (default every `Boxes` output). ``truth``: a topic or `Boxes`
    (default every synced Detection3DArray; False for none). Boxes in another frame are moved
    through TF. Patches carry a gid ("truth", "prediction", "ego") so tests and callers can
    find them.
    """
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon

    from bagscope.models.records import PointSet, points_from
    from bagscope.replay.decode.boxes import Boxes

    if not range_m > 0:
        msg = f"range_m must be positive, got {range_m!r}"
        raise BagscopeError(msg)
    ax = ax if ax is not None else _new_axes(figsize=(7.5, 7))
    points: PointSet | None
    if isinstance(cloud, PointSet):
        points = cloud
    else:
        points = points_from(frame, cloud) if cloud is not None or frame.clouds else None
    if truth is None:
        truths = [
            _boxes_named(frame, t) for t, m in frame.messages.items() if m.msgtype == DETECTIONS
        ]
    elif truth is False:
        truths = []
    else:
        truths = [truth if isinstance(truth, Boxes) else _boxes_named(frame, truth)]
    if boxes is None:
        predicted = [(k, v) for k, v in frame.outputs.items() if isinstance(v, Boxes)]
    else:
        predicted = [
            (
                b if isinstance(b, str) else f"boxes {i + 1}",
                b if isinstance(b, Boxes) else _boxes_named(frame, b),
            )
            for i, b in enumerate(boxes)
        ]
    frame_id = (
        points.frame_id
        if points is not None
        else next((b.frame_id for b in [*truths, *(p for _, p in predicted)] if b.frame_id), "")
    )
    handles: list[Any] = []
    if points is not None and len(points):
        xyz = np.asarray(points.xyz, dtype=np.float64)
        near = (np.abs(xyz[:, 0]) <= range_m) & (np.abs(xyz[:, 1]) <= range_m)
        xyz = xyz[near]
        if len(xyz):
            low, high = np.percentile(xyz[:, 2], [2, 98])
            dots = ax.scatter(
                xyz[:, 0],
                xyz[:, 1],
                c=xyz[:, 2],
                s=0.6,
                cmap="viridis",
                vmin=low,
                vmax=max(high, low + 0.1),
                linewidths=0,
                rasterized=True,
            )
            bar = ax.get_figure().colorbar(dots, ax=ax, shrink=0.75, pad=0.02)  # type: ignore[union-attr]
            bar.set_label("height z (m)")
    layers = [("truth", TRUTH_COLOUR, "ground truth", b) for b in truths]
    layers += [
        ("prediction", PREDICTION_COLOURS[i % len(PREDICTION_COLOURS)], name, b)
        for i, (name, b) in enumerate(predicted)
    ]
    for gid, colour, name, some in layers:
        shown = _in_frame(frame, some, frame_id)
        inside = (np.abs(shown.centers[:, 0]) <= range_m) & (np.abs(shown.centers[:, 1]) <= range_m)
        shown = shown.select(inside)
        for corners, centre, yaw, size, ident, label in zip(
            shown.corners_bev(),
            shown.centers,
            shown.yaws,
            shown.sizes,
            shown.ids,
            shown.labels,
            strict=True,
        ):
            ax.add_patch(
                Polygon(corners, closed=True, fill=False, edgecolor=colour, linewidth=1.0, gid=gid)
            )
            nose = centre[:2] + 0.5 * size[0] * np.array([math.cos(yaw), math.sin(yaw)])
            ax.plot(
                [centre[0], nose[0]], [centre[1], nose[1]], color=colour, linewidth=0.8, gid=gid
            )
            text = ident or label
            if text:
                ax.annotate(
                    text,
                    xy=(float(corners[:, 0].max()), float(corners[:, 1].max())),
                    fontsize=6,
                    color=colour,
                    annotation_clip=True,
                )
        handles.append(Patch(fill=False, edgecolor=colour, label=f"{name} ({len(shown)})"))
    ego = 0.04 * range_m
    ax.add_patch(
        Polygon(
            [[1.5 * ego, 0.0], [-ego, 0.8 * ego], [-ego, -0.8 * ego]],
            closed=True,
            color=EGO_COLOUR,
            gid="ego",
            zorder=5,
        )
    )
    handles.append(Line2D([], [], marker=">", linestyle="", color=EGO_COLOUR, label="ego (sensor)"))
    ax.set_xlim(-range_m, range_m)
    ax.set_ylim(-range_m, range_m)
    ax.set_aspect("equal")
    where = f", {frame_id}" if frame_id else ""
    style_axes(
        ax,
        xlabel=f"x (m{where})",
        ylabel="y (m)",
        title=f"frame {frame.index} · bird's-eye view",
    )
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.85)
    return ax


# -- lidar on an image ------------------------------------------------------------------------
def _image_topic(frame: Frame, image_topic: str | None) -> str:
    if image_topic is None:
        calibrated = [
            t for t in frame.images if t in frame.cameras and frame.cameras[t].is_calibrated
        ]
        if not calibrated:
            msg = (
                "no synced image has a calibrated CameraInfo; sync an image topic and have its "
                f"camera_info in the log (images: {', '.join(frame.images) or 'none'})"
            )
            raise BagscopeError(msg)
        return calibrated[0]
    for topic in frame.images:
        if _same_frame(topic, image_topic):
            return topic
    msg = f"{image_topic!r} is not a synced image topic; have: {', '.join(frame.images) or 'none'}"
    raise BagscopeError(msg)


def plot_lidar_on_image(
    frame: Frame,
    *,
    image_topic: str | None = None,
    points: str | PointSet | None = None,
    ax: Axes | None = None,
    max_depth: float | None = None,
) -> Axes:
    """The image with lidar points projected into it, coloured by depth (colorbar in metres).

    Projection is :class:`~bagscope.models.projection.ProjectToCamera`'s (TF, the calibrated
    model with its distortion, the odom time-travel between the two stamps), so the figure
    shows exactly what the pipeline's overlay does. ``points``: a cloud topic, a point stage
    of ``frame.outputs`` or a `PointSet` (default the first cloud); ``image_topic`` defaults to
    the first synced image with a calibrated camera. Near points are drawn over far ones.
    """
    import numpy as np

    from bagscope.models.projection import ProjectToCamera
    from bagscope.models.records import PointSet

    topic = _image_topic(frame, image_topic)
    source: Any = points
    if isinstance(points, PointSet):
        source = "_plotted_points"
        frame = replace(frame, outputs={**frame.outputs, source: points})
    camera = frame.cameras.get(topic)
    if camera is None or not camera.is_calibrated:
        msg = f"{topic} has no calibrated CameraInfo in this frame: nothing to project with"
        raise BagscopeError(msg)
    stage = ProjectToCamera(input=source, images=[topic], max_depth=max_depth)
    projection = stage.process(frame).get(topic)
    if projection is None:
        msg = f"TF cannot place the points in {camera.frame_id!r} for {topic} in this frame"
        raise BagscopeError(msg)
    pixels = np.asarray(frame.images[topic].pixels)
    ax = (
        ax
        if ax is not None
        else _new_axes(figsize=(9, 9 * pixels.shape[0] / pixels.shape[1] + 0.6))
    )
    ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, interpolation="nearest")
    order = np.argsort(-projection.depth)  # far first: near points end up on top
    # The 98th percentile, not the maximum: one far return should not wash out the near ones.
    depths = projection.depth
    top = (
        max_depth
        if max_depth is not None
        else float(np.percentile(depths, 98))
        if len(depths)
        else 1.0
    )
    dots = ax.scatter(
        projection.pixels[order, 0],
        projection.pixels[order, 1],
        c=projection.depth[order],
        s=3,
        cmap="RdYlBu",  # red near to blue far, as bagscope.models.projection.depth_colors
        vmin=0.0,
        vmax=top,
        linewidths=0,
        rasterized=True,
    )
    bar = ax.get_figure().colorbar(dots, ax=ax, shrink=0.8, pad=0.02)  # type: ignore[union-attr]
    bar.set_label("depth (m)")
    ax.set_xlim(0, projection.width)
    ax.set_ylim(projection.height, 0)
    ax.set_xlabel("u (px)")
    ax.set_ylabel("v (px)")
    ax.set_title(f"{topic} · {len(projection.depth)} lidar points", fontsize=10, loc="left")
    return ax
