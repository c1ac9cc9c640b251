"""Headless rendering of :class:`~bagscope.viz.view.Scene` s: the 3D view with Open3D's
``OffscreenRenderer`` (CPU rendering works without a display, so CI renders what a desk sees),
camera panels and the time strip composited in numpy, and the writers for MP4 / PNGs.

One :class:`SceneRenderer` is made per output and reused for every frame: creating a Filament
renderer costs far more than updating its geometry.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.viz.scene import BOX_EDGES
from bagscope.viz.view import PRESETS, ViewError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Event
    from bagscope.viz.view import Scene, ViewSpec

__all__ = [
    "FrameWriter",
    "GridLayout",
    "SceneRenderer",
    "compose",
    "grid_layout",
    "open_writer",
    "parse_size",
]

BACKGROUND = (0.0, 0.0, 0.0)
BACKGROUND_U8 = tuple(round(c * 255) for c in BACKGROUND)
_BEV_ACROSS_M = 60.0
_FOV_DEG = 60.0
_SEVERITY_COLORS = {"info": (150, 150, 150), "warning": (240, 200, 40), "error": (235, 60, 60)}


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. 1280x720): both even (H.264 in yuv420p needs it) and >= 64."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        msg = f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720"
        raise ViewError(msg)
    w, h = int(width), int(height)
    if w < 64 or h < 64 or w > 8192 or h > 8192 or w % 2 or h % 2:
        msg = f"--size {text!r}: width and height must be even numbers from 64 to 8192"
        raise ViewError(msg)
    return w, h


# ------------------------------------------------------------------------------- 3D view


class SceneRenderer:
    """The 3D view of scenes at a fixed image size, with a camera preset (bev, chase, sensor)."""

    def __init__(self, *, size: tuple[int, int], point_size: float = 2.0) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.size = size
        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        with _quiet_fds():  # Filament prints its start-up banner from C++, on the terminal
            self._renderer = o3d.visualization.rendering.OffscreenRenderer(*size)
        scene = self._renderer.scene
        scene.set_background([*BACKGROUND, 1.0])
        scene.view.set_post_processing(False)  # no tone mapping: colours come out as given
        mat = o3d.visualization.rendering.MaterialRecord()
        mat.shader = "defaultUnlit"
        mat.point_size = float(point_size) * 2  # Filament's point size is in device pixels
        self._points = mat
        line = o3d.visualization.rendering.MaterialRecord()
        line.shader = "unlitLine"
        line.line_width = 2.0
        self._lines = line
        self._names: list[str] = []

    def render(self, scene: Scene, *, preset: str) -> NDArray[np.uint8]:
        """The scene as an (H, W, 3) uint8 image seen from ``preset``."""
        if preset not in PRESETS:
            msg = f"unknown 3D view {preset!r}; choose one of {', '.join(PRESETS)}"
            raise ViewError(msg)
        o3d = self._o3d
        s3d = self._renderer.scene
        for name in self._names:
            s3d.remove_geometry(name)
        self._names = []

        def add(name: str, geometry: Any, material: Any) -> None:
            s3d.add_geometry(name, geometry, material)
            self._names.append(name)

        for i, layer in enumerate(scene.points):
            if len(layer.xyz) == 0:
                continue
            cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(np.ascontiguousarray(layer.xyz)))
            cloud.point.colors = o3d.core.Tensor(np.ascontiguousarray(layer.colors))
            add(f"points{i}", cloud, self._points)
        segments: list[NDArray[np.float64]] = []
        colors: list[NDArray[np.float64]] = []
        edges = np.asarray(BOX_EDGES)
        for boxes in scene.boxes:
            if len(boxes.corners):
                segments.append(boxes.corners[:, edges].reshape(-1, 2, 3))
                colors.append(np.repeat(boxes.colors.astype(np.float64), len(edges), axis=0))
        for line in scene.lines:
            if len(line.points) > 1:
                segments.append(np.stack([line.points[:-1], line.points[1:]], axis=1))
                colors.append(np.tile(line.color, (len(line.points) - 1, 1)))
        for axes in scene.axes:
            for pose in axes.poses.values():
                origin = pose[:3, 3]
                tips = origin + pose[:3, :3].T * axes.length  # rows: x, y, z axis tips
                segments.append(np.stack([np.tile(origin, (3, 1)), tips], axis=1))
                colors.append(np.eye(3))
        segments.append(_ego_outline(scene.ego))
        colors.append(np.ones((len(segments[-1]), 3)))
        if segments:
            seg = np.concatenate(segments)
            lines = o3d.geometry.LineSet()
            lines.points = o3d.utility.Vector3dVector(seg.reshape(-1, 3))
            lines.lines = o3d.utility.Vector2iVector(np.arange(len(seg) * 2).reshape(-1, 2))
            lines.colors = o3d.utility.Vector3dVector(np.concatenate(colors))
            add("lines", lines, self._lines)
        eye, center, up = _camera(scene, preset)
        self._renderer.setup_camera(_FOV_DEG, center, eye, up)
        image = np.asarray(self._renderer.render_to_image())
        return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """stdout and stderr at the file-descriptor level sent to /dev/null for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _ego_outline(ego: NDArray[np.float64]) -> NDArray[np.float64]:
    """A 4.5 x 1.9 m footprint with a nose, as line segments (K, 2, 3): the ego at a glance."""
    local = np.array(
        [[2.25, 0.95, 0], [-2.25, 0.95, 0], [-2.25, -0.95, 0], [2.25, -0.95, 0], [3.0, 0, 0]]
    )
    pts = local @ ego[:3, :3].T + ego[:3, 3]
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    return np.stack([np.stack([pts[a], pts[b]]) for a, b in pairs])


def _camera(
    scene: Scene, preset: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(eye, centre, up) of a preset, following the ego (its heading, not its roll/pitch)."""
    position = scene.ego[:3, 3]
    heading = scene.ego[:3, 0].copy()
    heading[2] = 0.0
    norm = float(np.linalg.norm(heading))
    heading = heading / norm if norm > 1e-9 else np.array([1.0, 0.0, 0.0])
    up_z = np.array([0.0, 0.0, 1.0])
    if preset == "bev":
        height = (_BEV_ACROSS_M / 2) / math.tan(math.radians(_FOV_DEG / 2))
        return position + up_z * height, position, heading
    if preset == "chase":
        return position - 14.0 * heading + 7.0 * up_z, position + 12.0 * heading, up_z
    sensors = scene.info.get("sensors", {})
    poses = next((a.poses for a in scene.axes), {})
    pose = next((poses[f] for f in sensors.values() if f in poses), scene.ego)
    forward = pose[:3, 0]
    return pose[:3, 3], pose[:3, 3] + 10.0 * forward, pose[:3, 2]


# ------------------------------------------------------------------------------- composition


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Where each part of a grid frame goes: (x, y, w, h) rectangles in the output image."""

    view: tuple[int, int, int, int]
    panels: tuple[tuple[int, int, int, int], ...]
    strip: tuple[int, int, int, int]


def grid_layout(size: tuple[int, int], panel_shapes: Sequence[tuple[int, int]]) -> GridLayout:
    """The 3D view on the left, the camera panels stacked on the right (each scaled to keep
    its aspect, the column at most 45 % of the width), the time strip along the bottom."""
    width, height = size
    strip_h = max(28, height // 10)
    main_h = height - strip_h
    if not panel_shapes:
        return GridLayout(view=(0, 0, width, main_h), panels=(), strip=(0, main_h, width, strip_h))
    slot_h = main_h // len(panel_shapes)
    aspect = max(w / h for h, w in panel_shapes)
    col_w = min(int(width * 0.45), int(slot_h * aspect))
    col_w -= col_w % 2
    rects = []
    for i, (h, w) in enumerate(panel_shapes):
        scale = min(col_w / w, slot_h / h)
        pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
        rects.append((width - col_w + (col_w - pw) // 2, i * slot_h + (slot_h - ph) // 2, pw, ph))
    return GridLayout(
        view=(0, 0, width - col_w, main_h), panels=tuple(rects), strip=(0, main_h, width, strip_h)
    )


def resize(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """``image`` scaled to (w, h) with Pillow's bilinear filter (identity when it fits)."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _fit(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """``image`` scaled to fit ``size`` keeping its aspect, centred on the background."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND_U8
    x, y = (width - w) // 2, (height - h) // 2
    out[y : y + h, x : x + w] = resize(image, (w, h))
    return out


def _caption(image: NDArray[np.uint8], lines: Sequence[str]) -> None:
    """Text in the top-left corner, in place (white on a dark box)."""
    from PIL import Image, ImageDraw

    if not lines:
        return
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    text = "\n".join(lines)
    box = draw.multiline_textbbox((6, 4), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.multiline_text((6, 4), text, fill=(240, 240, 240))
    image[:] = np.asarray(pil)


def strip_image(
    size: tuple[int, int],
    *,
    t_ns: int,
    span: tuple[int, int],
    events: Sequence[Event] = (),
    text: str = "",
) -> NDArray[np.uint8]:
    """The strip: ``text`` on the left, a timeline of ``span`` with the events as ticks
    (coloured by severity) and the current time as a white cursor."""
    from PIL import Image, ImageDraw

    width, height = size
    pil = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(pil)
    draw.text((8, height // 2 - 6), text, fill=(235, 235, 235))
    left = min(width // 3, 8 + int(draw.textlength(text)) + 16)
    right = width - 10
    y0, y1 = 6, height - 6
    draw.rectangle((left, height // 2 - 1, right, height // 2 + 1), fill=(90, 90, 100))
    start, end = span
    extent = max(end - start, 1)

    def x_of(t: int) -> int:
        return left + round((min(max(t, start), end) - start) / extent * (right - left))

    # one row per severity (errors lowest), so a warning that lasts the whole log does not
    # hide the short errors under it
    rows = {"info": 0, "warning": 1, "error": 2}
    row_h = max((y1 - y0 - 8) // 3, 2)
    for event in sorted(events, key=lambda e: rows.get(e.severity, 0)):
        xa, xb = x_of(event.t_ns), x_of(max(event.end_ns, event.t_ns))
        color = _SEVERITY_COLORS.get(event.severity, (150, 150, 150))
        top = y0 + 4 + rows.get(event.severity, 0) * row_h
        draw.rectangle((xa, top, max(xb, xa + 1), top + row_h - 1), fill=color)
    x = x_of(t_ns)
    draw.rectangle((x - 1, y0, x + 1, y1), fill=(255, 255, 255))
    return np.asarray(pil)


def compose(
    scene: Scene,
    spec: ViewSpec,
    *,
    renderer: SceneRenderer | None,
    span: tuple[int, int],
    events: Sequence[Event] = (),
) -> NDArray[np.uint8]:
    """One output image of ``spec.size`` for ``scene``: a 3D preset, a camera panel, or the
    grid. ``renderer`` must have the size :func:`renderer_size` says (None for a camera view)."""
    width, height = spec.size
    since = scene.info.get("since_start_s")
    stamp = f"t = {scene.t_ns / 1e9:.3f}" + (f" (+{since:.2f} s)" if since is not None else "")
    title = f"frame {scene.index}  {stamp}"
    if spec.camera_topic is not None:
        (panel,) = scene.panels
        out = _fit(panel.image, (width, height))
        _caption(out, [f"{panel.topic}  {title}"])
        return out
    assert renderer is not None
    if spec.view in PRESETS:
        out = renderer.render(scene, preset=spec.view).copy()
        _caption(out, [title])
        return out
    layout = grid_layout(spec.size, [p.image.shape[:2] for p in scene.panels])
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND_U8
    x, y, w, h = layout.view
    view = renderer.render(scene, preset="chase").copy()
    _caption(view, [line for line in scene.info.get("lines", [])[1:] if ": " in line])
    out[y : y + h, x : x + w] = view
    for panel, (x, y, w, h) in zip(scene.panels, layout.panels, strict=True):
        out[y : y + h, x : x + w] = resize(panel.image, (w, h))
    x, y, w, h = layout.strip
    out[y : y + h, x : x + w] = strip_image(
        (w, h), t_ns=scene.t_ns, span=span, events=events, text=title
    )
    return out


def renderer_size(spec: ViewSpec, panel_shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The 3D view's size in an output of ``spec``: the whole image, or the grid's view area."""
    if spec.view in PRESETS:
        return spec.size
    _, _, w, h = grid_layout(spec.size, panel_shapes).view
    return w, h


# ------------------------------------------------------------------------------- writers


class FrameWriter:
    """Where rendered frames go: an MP4, a directory of ``<t_ns>.png`` or one PNG. Written
    beside the target and moved into place by :meth:`close`, so an interrupted render leaves
    no half-written output (and an old one in place)."""

    def __init__(self, out: Path, *, size: tuple[int, int], fps: float, overwrite: bool) -> None:
        self.out = out
        self.kind = (
            "mp4"
            if out.suffix.lower() == ".mp4"
            else "png"
            if out.suffix.lower() == ".png"
            else "dir"
        )
        if out.exists() and not overwrite:
            msg = f"{out} exists; pass --overwrite to replace it"
            raise ViewError(msg)
        if not out.parent.is_dir():
            msg = f"{out.parent} is not a directory"
            raise ViewError(msg)
        self._tmp = out.with_name(f".{out.name}.partial{out.suffix if self.kind != 'dir' else ''}")
        self._remove(self._tmp)
        self.count = 0
        self._mp4: Any = None
        if self.kind == "mp4":
            import imageio_ffmpeg  # type: ignore[import-untyped]

            self._mp4 = imageio_ffmpeg.write_frames(
                str(self._tmp),
                size,
                fps=fps,
                pix_fmt_out="yuv420p",
                macro_block_size=2,
                quality=7,
            )
            self._mp4.send(None)
        elif self.kind == "dir":
            self._tmp.mkdir()

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def write(self, image: NDArray[np.uint8], *, t_ns: int) -> None:
        from PIL import Image

        self.count += 1
        if self._mp4 is not None:
            self._mp4.send(np.ascontiguousarray(image))
        elif self.kind == "dir":
            Image.fromarray(image).save(self._tmp / f"{t_ns}.png", compress_level=1)
        else:
            if self.count > 1:
                msg = f"{self.out}: one PNG holds one frame; give --at T, or a directory or .mp4"
                raise ViewError(msg)
            Image.fromarray(image).save(self._tmp)

    def close(self) -> Path:
        """Finish the file and move it into place."""
        if self._mp4 is not None:
            self._mp4.close()
            self._mp4 = None
        self._remove(self.out)
        os.replace(self._tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Drop what was written (the old output, if any, stays)."""
        if self._mp4 is not None:
            with contextlib.suppress(Exception):  # ffmpeg may already be gone; cleanup only
                self._mp4.close()
            self._mp4 = None
        self._remove(self._tmp)


def open_writer(out: Path, *, size: tuple[int, int], fps: float, overwrite: bool) -> FrameWriter:
    """The writer for ``out`` by its name: ``*.mp4``, ``*.png``, else a directory."""
    return FrameWriter(out, size=size, fps=fps, overwrite=overwrite)
