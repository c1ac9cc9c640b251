"""The view spec and the scene: one description drives the interactive viewer and the renderer.

A :class:`ViewSpec` says *how* to look (which view, colouring, point size, the common frame,
which layers are on, the image size); :func:`bagscope.viz.scene.build_scene` turns one frame
(plus its stage outputs, the run's events and the whole log's TF) into a :class:`Scene` of
renderer-agnostic primitives - point layers, box layers, lines, TF axes, camera panels with
their overlays already drawn - in the common frame. The Open3D viewer and the headless renderer
only draw a Scene, so what an engineer sees on their desk is what CI renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "COLOR_BY",
    "PRESETS",
    "VIEWS",
    "AxesLayer",
    "BoxLayer",
    "CameraPanel",
    "LineLayer",
    "PointLayer",
    "Scene",
    "ViewError",
    "ViewSpec",
    "parse_view",
]

# Camera presets of the 3D view; "camera:/topic" shows one image panel, "grid" the 3D view
# with every camera panel and a strip with the time and the events.
PRESETS: tuple[str, ...] = ("bev", "chase", "sensor")
VIEWS: tuple[str, ...] = (*PRESETS, "grid", "camera:/TOPIC")
COLOR_BY: tuple[str, ...] = ("height", "intensity", "range", "ring")


class ViewError(BagscopeError):
    """A view spec that names nothing: an unknown view, colouring or frame."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewSpec:
    """How to look at a frame.

    ``view``: a preset (``bev``, ``chase``, ``sensor``), ``grid``, or ``camera:/topic``;
    ``color_by``: ``height``, ``intensity``, ``range``, ``ring`` or any point field;
    ``fixed_frame``: the common frame everything is drawn in (``odom`` so the world stays
    still while the ego moves, or ``base_link`` so the ego stays still); ``layers``: layer
    name -> shown (a missing name is shown); ``trail_s``: seconds of ego trail behind it.
    """

    view: str = "chase"
    color_by: str = "height"
    point_size: float = 2.0
    fixed_frame: str = "odom"
    size: tuple[int, int] = (1280, 720)
    layers: Mapping[str, bool] = field(default_factory=dict)
    trail_s: float = 10.0

    def shows(self, layer: str) -> bool:
        return self.layers.get(layer, True)

    @property
    def camera_topic(self) -> str | None:
        """The image topic of a ``camera:/topic`` view, else None."""
        return self.view.partition(":")[2] or None if self.view.startswith("camera:") else None


def parse_view(text: str) -> str:
    """A ``--view`` value checked: a preset, ``grid`` or ``camera:/topic`` (topic checked later,
    against the log)."""
    if text in (*PRESETS, "grid"):
        return text
    if text.startswith("camera:") and len(text) > len("camera:"):
        return text
    msg = f"unknown view {text!r}; choose one of {', '.join(VIEWS)}"
    raise ViewError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class PointLayer:
    """Points in the common frame with one RGB colour each (floats in [0, 1])."""

    name: str
    xyz: NDArray[np.float32]
    colors: NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxLayer:
    """Boxes as their 8 corners in the common frame (bottom face 0-3, top face 4-7, same
    order), a colour and a label ("car 12 0.93") each; ``truth`` marks ground truth."""

    name: str
    corners: NDArray[np.float64]
    colors: NDArray[np.float32]
    labels: tuple[str, ...]
    truth: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LineLayer:
    """A polyline in the common frame (the ego trail)."""

    name: str
    points: NDArray[np.float64]
    color: tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class AxesLayer:
    """Coordinate frames to draw as RGB axes: name -> 4x4 pose in the common frame."""

    name: str
    poses: Mapping[str, NDArray[np.float64]]
    length: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraPanel:
    """One image topic with its overlays already drawn: lidar points by depth, 2D boxes."""

    topic: str
    image: NDArray[np.uint8]
    points_drawn: int = 0
    boxes_drawn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scene:
    """Everything one frame shows, in ``frame_id`` (the spec's fixed frame, or the sensor's
    when TF cannot reach it). ``ego`` is the ego's pose in that frame; ``info`` the info
    panel's lines (frame time, per-topic stamps and skew, point counts, stage timings)."""

    t_ns: int
    index: int
    frame_id: str
    ego: NDArray[np.float64]
    points: tuple[PointLayer, ...] = ()
    boxes: tuple[BoxLayer, ...] = ()
    lines: tuple[LineLayer, ...] = ()
    axes: tuple[AxesLayer, ...] = ()
    panels: tuple[CameraPanel, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)
