"""``replay view``'s window: an Open3D ``gui`` app that draws one :class:`Scene` per frame.

The viewer only draws what :func:`bagscope.viz.scene.build_scene` made (point layers, boxes,
the trail, TF axes, camera panels with their overlays), so it can never disagree with the
headless renderer. Frames come from a :class:`~bagscope.viz.playback.FrameSource` (read ahead
on a thread, seeks restart the stream), so a 40 GB log opens as fast as a small one.

:class:`Viewer` is also a small API (``step``, ``seek``, ``next_event``, ``toggle``,
``set_view``, ``screenshot``) so tests and scripts drive the same window a person clicks.
The gui needs the main thread and a display (under ``xvfb-run`` without one).

Screenshots grab the window's pixels from the X server (every panel included, exactly what
the window shows); when the window does not fit on the X screen (``xvfb-run``'s default screen
is 640x480: give ``-s "-screen 0 1920x1080x24"``) they fall back to the 3D view rendered
offscreen at the window's size with the side panel composited beside it by PIL.
"""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bagscope.viz.view import PRESETS, ViewSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Event
    from bagscope.viz.playback import FrameSource, Played
    from bagscope.viz.view import Scene

__all__ = ["PANEL_WIDTH", "SHORTCUTS", "SPEEDS", "Viewer", "needs_display"]

PANEL_WIDTH = 360
SPEEDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("space", "play / pause"),
    ("left / right", "step one frame back / forward"),
    ("[ / ]", "slower / faster"),
    ("n / p", "next / previous event"),
    ("b / c / s", "bev / chase / sensor view"),
    ("h", "this help"),
)
_BACKGROUND = (0.06, 0.06, 0.08)
_AXIS_COLORS = ((1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.3, 0.5, 1.0))
_SETTLE_TICKS = 12  # gui ticks (each a redraw) before a screenshot reads the window
_MAX_LABELS = 60  # 3D labels are ImGui text: hundreds slow every redraw
_SLIDER_SLACK_NS = 5_000_000
_GRAB_TRIES = 8


def needs_display() -> str | None:
    """The one-line reason the window cannot open here, or None when a display is set."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "replay view needs a display: run it under xvfb-run (apt install xvfb) or use replay render"
    )


@dataclass(frozen=True, slots=True)
class _Camera:
    center: NDArray[np.float64]
    eye: NDArray[np.float64]
    up: NDArray[np.float64]


def preset_camera(view: str, ego: NDArray[np.float64]) -> _Camera:
    """Where each preset looks from, in the ego's pose: ``bev`` straight down with the ego's
    heading up the screen, ``chase`` behind and above, ``sensor`` from the roof forward."""
    at = ego[:3, 3]
    fwd = ego[:3, 0]
    up = np.array([0.0, 0.0, 1.0])
    if view == "bev":
        return _Camera(center=at + 8 * fwd, eye=at + 8 * fwd + 70 * up, up=fwd)
    if view == "sensor":
        return _Camera(center=at + 20 * fwd + up, eye=at + 1.9 * up, up=ego[:3, 2])
    return _Camera(center=at + 10 * fwd, eye=at - 14 * fwd + 8 * up, up=up)


class Viewer:
    """The window, and the API that drives it.

    ``source`` feeds frames; ``events`` (a run's findings) are the timeline's marks;
    ``boxes``/``truth`` are passed on to ``build_scene``. Create it after
    ``gui.Application.instance.initialize()``, on the main thread.
    """

    def __init__(
        self,
        source: FrameSource,
        spec: ViewSpec,
        *,
        events: Sequence[Event] = (),
        boxes: Sequence[str] = (),
        truth: str | None = None,
        title: str = "replay view",
    ) -> None:
        from open3d.visualization import gui, rendering

        self.gui = gui
        self.rendering = rendering
        self.app = gui.Application.instance
        self.source = source
        self.spec = spec
        self.view = spec.view if spec.view in PRESETS else "chase"
        self.boxes = tuple(boxes)
        self.truth = truth
        self.events = sorted(events, key=lambda e: e.t_ns)
        info = source.log.info()
        self.log_start_ns = info.start_ns
        self.log_end_ns = info.end_ns
        self.hidden: set[str] = {name for name, on in spec.layers.items() if not on}
        self.scene: Scene | None = None
        self.playing = False
        self.speed = 1.0
        self.update_ms: list[float] = []
        self._shown_times: list[int] = []  # frames shown since the last seek, for step -1
        self._geometry: dict[str, str] = {}  # geometry name -> layer name
        self._labels: list[Any] = []
        self._checkboxes: dict[str, Any] = {}
        self._images: dict[str, Any] = {}
        self._play_clock: tuple[float, int] | None = None  # (wall s, log ns) when play began
        self._closed = False
        self.last_capture = ""  # how the last screenshot was made: "window" or "composite"

        width, height = spec.size
        self.window = self.app.create_window(title, width, height)
        self.widget = gui.SceneWidget()
        self.widget.scene = rendering.Open3DScene(self.window.renderer)
        self.widget.scene.set_background([*_BACKGROUND, 1.0])
        self.widget.scene.show_axes(False)
        self.window.add_child(self.widget)
        self._build_panel()
        self._help = gui.Label("\n".join(f"{k:>14}   {v}" for k, v in SHORTCUTS))
        self._help.background_color = gui.Color(0.0, 0.0, 0.0, 0.75)
        self._help.visible = False
        self.window.add_child(self._help)
        self.window.set_on_layout(self._layout)
        self.window.set_on_key(self._on_key)
        self.window.set_on_tick_event(self._on_tick)
        self.window.set_on_close(self._on_close)
        self._camera_ready = False

    # -- widgets -------------------------------------------------------------------------------
    def _build_panel(self) -> None:
        gui = self.gui
        em = self.window.theme.font_size
        self.panel = gui.ScrollableVert(int(0.25 * em), gui.Margins(int(0.5 * em)))
        self.camera_box = gui.Vert(int(0.25 * em))
        self.panel.add_child(self.camera_box)

        self.info_label = gui.Label("no frame yet")
        self.panel.add_child(self.info_label)

        row = gui.Horiz(int(0.25 * em))
        self.view_combo = gui.Combobox()
        for name in PRESETS:
            self.view_combo.add_item(name)
        self.view_combo.selected_text = self.view
        self.view_combo.set_on_selection_changed(lambda text, _i: self.set_view(text))
        row.add_child(gui.Label("view"))
        row.add_child(self.view_combo)
        self.panel.add_child(row)

        self.panel.add_child(gui.Label("layers"))
        self.layer_box = gui.Vert(0)
        self.panel.add_child(self.layer_box)

        self.time_label = gui.Label("")
        self.panel.add_child(self.time_label)
        self.slider = gui.Slider(gui.Slider.DOUBLE)
        self.slider.set_limits(0.0, max((self.log_end_ns - self.log_start_ns) / 1e9, 1e-3))
        self.slider.set_on_value_changed(self._on_slider)
        self.panel.add_child(self.slider)

        buttons = gui.Horiz(int(0.2 * em))
        for text, action in (
            ("|<", self.previous_event),
            ("<", lambda: self.step(-1)),
            ("play", self.toggle_play),
            (">", lambda: self.step(1)),
            (">|", self.next_event),
            ("-", lambda: self.change_speed(-1)),
            ("+", lambda: self.change_speed(1)),
        ):
            button = gui.Button(text)
            button.horizontal_padding_em = 0.4
            button.set_on_clicked(action)
            if text == "play":
                self.play_button = button
            buttons.add_child(button)
        self.panel.add_child(buttons)
        self.speed_label = gui.Label("")
        self.panel.add_child(self.speed_label)

        self.panel.add_child(gui.Label(f"events ({len(self.events)})"))
        self.event_list = gui.ListView()
        self.event_list.set_items([self._event_line(e) for e in self.events] or ["(no run)"])
        self.event_list.set_max_visible_items(8)
        self.event_list.set_on_selection_changed(self._on_event_selected)
        self.panel.add_child(self.event_list)
        self.window.add_child(self.panel)
        self._refresh_controls()

    def _on_slider(self, value: float) -> None:
        t_ns = self.log_start_ns + round(float(value) * 1e9)
        # the slider reports back the value we set it to (rounded): only a real move seeks
        if self.scene is None or abs(t_ns - self.scene.t_ns) > _SLIDER_SLACK_NS:
            self.seek(t_ns)

    def _event_line(self, event: Event) -> str:
        return f"{(event.t_ns - self.log_start_ns) / 1e9:7.2f}s {event.severity[:4]} {event.kind}"

    def _on_event_selected(self, _text: str, _double: bool) -> None:
        index = self.event_list.selected_index
        if 0 <= index < len(self.events):
            self.seek(self.events[index].t_ns)

    def _layout(self, _ctx: Any) -> None:
        gui = self.gui
        rect = self.window.content_rect
        panel_w = min(PANEL_WIDTH, rect.width // 2)
        self.widget.frame = gui.Rect(rect.x, rect.y, rect.width - panel_w, rect.height)
        self.panel.frame = gui.Rect(rect.get_right() - panel_w, rect.y, panel_w, rect.height)
        em = self.window.theme.font_size
        self._help.frame = gui.Rect(rect.x + em, rect.y + em, 26 * em, (len(SHORTCUTS) + 1) * em)

    def _refresh_controls(self) -> None:
        self.play_button.text = "pause" if self.playing else "play"
        self.speed_label.text = f"speed x{self.speed:g}" + ("  (playing)" if self.playing else "")
        if self.scene is not None:
            since = (self.scene.t_ns - self.log_start_ns) / 1e9
            total = (self.log_end_ns - self.log_start_ns) / 1e9
            self.time_label.text = f"t = {since:.2f} / {total:.2f} s"
            self.slider.double_value = since

    # -- drawing a scene -----------------------------------------------------------------------
    def show(self, played: Played) -> None:
        """Build the scene of ``played`` and replace what the window shows with it."""
        from bagscope.replay.decode.boxes import Boxes
        from bagscope.viz.scene import build_scene

        t0 = time.perf_counter()
        outputs = played.frame.outputs
        # every frame stage may be a detector; those whose output is not boxes are not drawn
        boxes = [n for n in self.boxes if isinstance(outputs.get(n), Boxes) or n not in outputs]
        scene = build_scene(
            played.frame,
            self.spec,
            boxes=boxes,
            truth=self.truth,
            log_start_ns=self.log_start_ns,
            timings_ms=played.timings_ms,
        )
        self.draw(scene, errors=played.errors)
        self._shown_times.append(scene.t_ns)
        self.update_ms.append((time.perf_counter() - t0) * 1e3)

    def draw(self, scene: Scene, *, errors: dict[str, str] | None = None) -> None:
        """Put ``scene``'s layers into the 3D view and its panels and info into the side."""
        import open3d as o3d

        rendering = self.rendering
        s3d = self.widget.scene
        for name in list(self._geometry):
            s3d.remove_geometry(name)
        self._geometry.clear()
        for label in self._labels:
            self.widget.remove_3d_label(label)
        self._labels.clear()

        for layer in scene.points:
            xyz = np.ascontiguousarray(layer.xyz, np.float32)
            cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor.from_numpy(xyz))
            colors = np.ascontiguousarray(layer.colors, np.float32)
            cloud.point.colors = o3d.core.Tensor.from_numpy(colors)
            material = rendering.MaterialRecord()
            material.shader = "defaultUnlit"
            material.point_size = float(self.spec.point_size) * self.window.scaling
            self._add(f"points:{layer.name}", layer.name, cloud, material=material)
        line_material = rendering.MaterialRecord()
        line_material.shader = "unlitLine"
        line_material.line_width = 2.0 * self.window.scaling
        from bagscope.viz.scene import BOX_EDGES

        edges = np.asarray(BOX_EDGES, dtype=np.int32)
        for box_layer in scene.boxes:
            n = len(box_layer.corners)
            if n == 0:
                continue
            lines = o3d.geometry.LineSet()
            lines.points = o3d.utility.Vector3dVector(box_layer.corners.reshape(-1, 3))
            lines.lines = o3d.utility.Vector2iVector(
                (edges[None, :, :] + 8 * np.arange(n)[:, None, None]).reshape(-1, 2)
            )
            lines.colors = o3d.utility.Vector3dVector(
                np.repeat(np.asarray(box_layer.colors, np.float64), len(BOX_EDGES), axis=0)
            )
            self._add(f"boxes:{box_layer.name}", box_layer.name, lines, material=line_material)
            if box_layer.name not in self.hidden:
                self._add_labels(box_layer.corners, box_layer.labels, box_layer.colors)
        for line in scene.lines:
            if len(line.points) < 2:
                continue
            path = o3d.geometry.LineSet()
            path.points = o3d.utility.Vector3dVector(np.asarray(line.points, np.float64))
            path.lines = o3d.utility.Vector2iVector(
                np.stack([np.arange(len(line.points) - 1), np.arange(1, len(line.points))], 1)
            )
            path.paint_uniform_color(line.color)
            self._add(f"line:{line.name}", line.name, path, material=line_material)
        for axes in scene.axes:
            self._add(f"axes:{axes.name}", axes.name, _axes_lineset(axes), material=line_material)

        for name in self._geometry.values():
            self._ensure_checkbox(name)
        self._draw_panels(scene)
        lines_text = list(scene.info.get("lines", []))
        lines_text.extend(f"{stage} failed: {text}" for stage, text in (errors or {}).items())
        note = scene.info.get("note")
        if note:
            lines_text.append(str(note))
        self.info_label.text = "\n".join(lines_text)
        self.scene = scene
        if self.view in PRESETS:
            self._place_camera(scene)
        self._refresh_controls()
        self.window.post_redraw()

    def _add(self, name: str, layer: str, geometry: Any, *, material: Any) -> None:
        self.widget.scene.add_geometry(name, geometry, material)
        self.widget.scene.show_geometry(name, layer not in self.hidden)
        self._geometry[name] = layer

    def _add_labels(
        self, corners: NDArray[np.float64], labels: Sequence[str], colors: NDArray[np.float32]
    ) -> None:
        for i, text in enumerate(labels[:_MAX_LABELS]):
            top = corners[i, 4:].mean(axis=0) + np.array([0.0, 0.0, 0.3])
            label = self.widget.add_3d_label(top.astype(np.float32), text)
            r, g, b = (float(c) for c in colors[i])
            label.color = self.gui.Color(r, g, b)
            self._labels.append(label)

    def _ensure_checkbox(self, layer: str) -> None:
        if layer in self._checkboxes:
            return
        box = self.gui.Checkbox(layer)
        box.checked = layer not in self.hidden

        def checked(on: bool) -> None:
            self.toggle(layer, on=on)

        box.set_on_checked(checked)
        self._checkboxes[layer] = box
        self.layer_box.add_child(box)
        self.window.set_needs_layout()

    def _draw_panels(self, scene: Scene) -> None:
        import open3d as o3d

        for panel in scene.panels:
            image = _fit_width(panel.image, PANEL_WIDTH - 24)
            o3d_image = o3d.geometry.Image(cast("Any", np.ascontiguousarray(image)))
            widget = self._images.get(panel.topic)
            if widget is None:
                widget = self.gui.ImageWidget(o3d_image)
                self._images[panel.topic] = widget
                self.camera_box.add_child(self.gui.Label(panel.topic))
                self.camera_box.add_child(widget)
                self.window.set_needs_layout()
            else:
                widget.update_image(o3d_image)

    def _place_camera(self, scene: Scene) -> None:
        cam = preset_camera(self.view, scene.ego)
        if not self._camera_ready:
            bounds = self.widget.scene.bounding_box
            self.widget.setup_camera(60.0, bounds, cam.center.astype(np.float32))
            self._camera_ready = True
        self.widget.look_at(
            cam.center.astype(np.float32), cam.eye.astype(np.float32), cam.up.astype(np.float32)
        )

    # -- the API -------------------------------------------------------------------------------
    def step(self, delta: int = 1) -> bool:
        """Show the next frame (``delta`` > 0) or go back ``-delta`` frames; False at an end."""
        if delta < 0:
            if len(self._shown_times) < 2:
                return False
            target = self._shown_times[max(len(self._shown_times) - 1 + delta, 0)]
            return self.seek(target)
        played = None
        for _ in range(max(delta, 1)):
            played = self.source.get(timeout=60)
            if played is None:
                self.pause()
                return False
        assert played is not None
        self.show(played)
        return True

    def seek(self, t_ns: int) -> bool:
        """Show the first frame at or after ``t_ns``; False when there is none."""
        if self.scene is not None and self.scene.t_ns == t_ns:
            return True  # the slider echoing a frame we just showed
        history = [t for t in self._shown_times if t < t_ns]
        self.source.seek(t_ns)
        played = self.source.get(timeout=60)
        if played is None:
            return False
        self._shown_times = history
        self.show(played)
        self._play_clock = None
        return True

    def next_event(self) -> bool:
        """Jump to the first event after the current frame."""
        now = self.scene.t_ns if self.scene is not None else self.log_start_ns - 1
        times = [e.t_ns for e in self.events]
        i = bisect.bisect_right(times, now)
        return self.seek(times[i]) if i < len(times) else False

    def previous_event(self) -> bool:
        """Jump to the last event before the current frame."""
        now = self.scene.t_ns if self.scene is not None else self.log_end_ns
        times = [e.t_ns for e in self.events]
        i = bisect.bisect_left(times, now)
        return self.seek(times[i - 1]) if i > 0 else False

    def toggle(self, layer: str, *, on: bool) -> None:
        """Show or hide a layer (a point topic, ``truth:/topic``, ``stage:name``, ``trail``,
        ``tf``); it stays so for the frames that follow."""
        if on:
            self.hidden.discard(layer)
        else:
            self.hidden.add(layer)
        for name, owner in self._geometry.items():
            if owner == layer:
                self.widget.scene.show_geometry(name, on)
        if layer in self._checkboxes:
            self._checkboxes[layer].checked = on
        if self.scene is not None and any(b.name == layer for b in self.scene.boxes):
            self.draw(self.scene)  # the 3D labels follow their boxes
        self.window.post_redraw()

    @property
    def layers(self) -> list[str]:
        """The names of the layers drawn so far (what the checkboxes toggle)."""
        return list(self._checkboxes)

    def set_view(self, view: str) -> None:
        if view not in PRESETS:
            msg = f"unknown view {view!r}; choose one of {', '.join(PRESETS)}"
            raise ValueError(msg)
        self.view = view
        self.view_combo.selected_text = view
        if self.scene is not None:
            self._place_camera(self.scene)
        self.window.post_redraw()

    def toggle_play(self) -> None:
        self.playing = not self.playing
        self._play_clock = None
        self._refresh_controls()

    def pause(self) -> None:
        self.playing = False
        self._refresh_controls()

    def change_speed(self, direction: int) -> None:
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[min(max(i + direction, 0), len(SPEEDS) - 1)]
        self._play_clock = None
        self._refresh_controls()

    def toggle_help(self) -> None:
        self._help.visible = not self._help.visible
        self.window.post_redraw()

    def settle(self, ticks: int = _SETTLE_TICKS) -> None:
        """Let the gui lay out and redraw (a script's stand-in for the event loop)."""
        for _ in range(ticks):
            self.window.post_redraw()
            self.app.run_one_tick()
            time.sleep(0.02)

    def screenshot(self, path: Path | str) -> Path:
        """Save what the window shows as a PNG of the window's size (see the module doc)."""
        from PIL import Image

        path = Path(path)
        grabbed = None
        for _ in range(_GRAB_TRIES):  # a window just opened may take a few frames to show
            self.settle()
            grabbed = self._grab_window()
            if grabbed is not None or not self._fits_screen():
                break
        self.last_capture = "window" if grabbed is not None else "composite"
        image = grabbed if grabbed is not None else self._composite()
        Image.fromarray(image).save(path)
        return path

    def _fits_screen(self) -> bool:
        from PIL import ImageGrab

        display = os.environ.get("DISPLAY")
        if not display:
            return False
        try:
            width, height = ImageGrab.grab(xdisplay=display).size
        except OSError:
            return False
        frame = self.window.os_frame
        return (
            frame.x >= 0
            and frame.y >= 0
            and frame.get_right() <= width
            and (frame.get_bottom() <= height)
        )

    def _grab_window(self) -> NDArray[np.uint8] | None:
        from PIL import ImageGrab

        display = os.environ.get("DISPLAY")
        if not display:
            return None
        frame = self.window.os_frame
        try:
            screen = ImageGrab.grab(xdisplay=display)
        except OSError:
            return None
        if frame.x < 0 or frame.y < 0:
            return None
        if frame.x + frame.width > screen.width or frame.y + frame.height > screen.height:
            return None
        box = (frame.x, frame.y, frame.x + frame.width, frame.y + frame.height)
        pixels = np.asarray(screen.crop(box).convert("RGB"))
        return None if pixels.max() == 0 else pixels  # a window not drawn yet: black

    def _composite(self) -> NDArray[np.uint8]:
        """The 3D view rendered offscreen plus the camera panels and info text beside it."""
        from PIL import Image, ImageDraw

        rect = self.widget.frame
        width, height = self.spec.size
        rendered = self.app.render_to_image(self.widget.scene, rect.width, rect.height)
        canvas = Image.new("RGB", (width, height), (41, 41, 41))
        canvas.paste(Image.fromarray(np.asarray(rendered)), (rect.x, rect.y))
        x, y = rect.x + rect.width + 8, 8
        draw = ImageDraw.Draw(canvas)
        for panel in self.scene.panels if self.scene is not None else ():
            image = Image.fromarray(_fit_width(panel.image, PANEL_WIDTH - 24))
            draw.text((x, y), panel.topic, fill=(230, 230, 230))
            canvas.paste(image, (x, y + 14))
            y += image.height + 22
        draw.multiline_text((x, y), self.info_label.text, fill=(230, 230, 230))
        return np.asarray(canvas)

    def widget_rect(self, which: str) -> tuple[int, int, int, int]:
        """(x, y, width, height) of ``3d`` or a camera topic's image in window pixels."""
        rect = self.widget.frame if which == "3d" else self._images[which].frame
        return rect.x, rect.y, rect.width, rect.height

    # -- the event loop ------------------------------------------------------------------------
    def _on_key(self, event: Any) -> bool:
        gui = self.gui
        if event.type != gui.KeyEvent.DOWN:
            return False
        actions: dict[Any, Callable[[], object]] = {
            gui.KeyName.SPACE: self.toggle_play,
            gui.KeyName.LEFT: lambda: self.step(-1),
            gui.KeyName.RIGHT: lambda: self.step(1),
            gui.KeyName.LEFT_BRACKET: lambda: self.change_speed(-1),
            gui.KeyName.RIGHT_BRACKET: lambda: self.change_speed(1),
            gui.KeyName.N: self.next_event,
            gui.KeyName.P: self.previous_event,
            gui.KeyName.H: self.toggle_help,
            gui.KeyName.B: lambda: self.set_view("bev"),
            gui.KeyName.C: lambda: self.set_view("chase"),
            gui.KeyName.S: lambda: self.set_view("sensor"),
        }
        action = actions.get(event.key)
        if action is None:
            return False
        action()
        return True

    def _on_tick(self) -> bool:
        """Playing: show the next read-ahead frame once its log time is due at this speed."""
        if not self.playing or self.scene is None:
            return False
        now = time.monotonic()
        if self._play_clock is None:
            self._play_clock = (now, self.scene.t_ns)
        wall0, log0 = self._play_clock
        due = log0 + (now - wall0) * self.speed * 1e9
        if self.scene.t_ns > due:
            return False
        played = self.source.poll()
        if played is None:
            if self.source.ended:
                self.pause()
            return False
        self.show(played)
        return True

    def _on_close(self) -> bool:
        self._closed = True
        self.source.close()
        return True

    def run(self) -> None:
        """The interactive loop, until the window is closed."""
        self.app.run()

    def close(self) -> None:
        """Close the window and stop the reader (for scripts; the app may be reused)."""
        if not self._closed:
            self.window.close()
            self._closed = True
            for _ in range(3):
                self.app.run_one_tick()
        self.source.close()


def _axes_lineset(axes: Any) -> Any:
    import open3d as o3d

    points: list[NDArray[np.float64]] = []
    colors: list[tuple[float, float, float]] = []
    for pose in axes.poses.values():
        origin = pose[:3, 3]
        for k in range(3):
            points.extend((origin, origin + axes.length * pose[:3, k]))
            colors.append(_AXIS_COLORS[k])
    lines = o3d.geometry.LineSet()
    lines.points = o3d.utility.Vector3dVector(np.asarray(points, np.float64).reshape(-1, 3))
    lines.lines = o3d.utility.Vector2iVector(np.arange(len(points)).reshape(-1, 2))
    lines.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64).reshape(-1, 3))
    return lines


def _fit_width(image: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    """``image`` scaled down (never up) to ``width`` pixels, RGB uint8."""
    if image.shape[1] <= width:
        return image
    from PIL import Image

    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
