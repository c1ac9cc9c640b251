"""What the cameras actually showed: brightness, clipping, sharpness and damage.

A camera that publishes on time can still deliver nothing usable: frames burnt out by the sun
or black in a tunnel, a smeared frame, or a payload that does not decode. Every Image and
CompressedImage topic is read message by message and reduced to a small grey image, about
``_TARGET_HEIGHT`` pixels tall - JPEGs are decoded straight to that size by libjpeg's DCT
scaling, raw images are strided - which is plenty for brightness and for relative sharpness and
keeps a 480x270 JPEG well under a millisecond.

Clipping is measured on the pixels that are ever lit: pixels dark in every frame of a topic (a
fisheye lens's black border, a vignette, the car's own hood in shadow) are the optics, not the
exposure, and are left out of the dark share. Sharpness is the variance of the Laplacian of the
grey image, judged only against the topic's own median (absolute values do not transfer
between cameras, lenses or scenes) and only on frames that are not clipped (a black frame has
no edges either). 16-bit and float images (depth, thermal) are not judged for exposure or blur.

Event kinds:

- ``corrupt``: payloads that fail to decode; one event per topic with the count and times
  (error).
- ``overexposed`` / ``underexposed``: frames with more than ``max_clipped`` of their lit pixels
  at >= 250 / <= 5 (warning), one event per run of such frames.
- ``blurry``: frames whose Laplacian variance is under ``blur_ratio`` x the topic's median
  (warning), judged on topics with at least 10 frames.

The same frame over and over (a driver stuck on a buffer) is :mod:`bagscope.analyzers.freeze`'s
``freeze`` event, not judged here.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.analyzers.findings import (
    corrupt_findings,
    note_corrupt,
    per_topic_result,
    report_check,
    runs,
    skip_check,
)
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Event, FigureSpec, StageResult
from bagscope.replay.decode.cdr import parse_compressed_image
from bagscope.replay.decode.compressed import JPEG_MAGIC
from bagscope.replay.decode.image import pixel_layout
from bagscope.replay.errors import DecodeError
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Metrics, RunContext
    from bagscope.replay.decode import CameraImage
    from bagscope.replay.message import Message

__all__ = ["ImageQuality"]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_TARGET_HEIGHT = 96  # grey image height for the statistics (at least; JPEG scales by 1/8 steps)
_DARK = 5
_BRIGHT = 250
_MIN_FRAMES = 10  # frames a topic needs before its own median is a baseline
_NEVER_LIT_ALL = 0.95  # a topic dark in this share of pixels in every frame is just dark


@dataclass(slots=True)
class _Topic:
    """Per-topic columns, one entry per decoded frame (plus the corrupt ones' times)."""

    times: array[int] = field(default_factory=lambda: array("q"))
    judged: array[int] = field(default_factory=lambda: array("b"))  # 8-bit: exposure/blur apply
    brightness: array[float] = field(default_factory=lambda: array("d"))
    blur: array[float] = field(default_factory=lambda: array("d"))
    dark: array[int] = field(default_factory=lambda: array("q"))  # pixels <= 5 in the grey image
    bright: array[int] = field(default_factory=lambda: array("q"))
    pixels: array[int] = field(default_factory=lambda: array("q"))  # grey image size
    corrupt_times: array[int] = field(default_factory=lambda: array("q"))
    first_error: str = ""
    messages: int = 0  # every message of the topic, judged or not
    not_judged: str = ""  # why exposure and blur are not judged (an encoding), if so
    lit: NDArray[np.uint8] | None = None  # per-pixel maximum over the frames
    mask_usable: bool = True  # every grey image had the same shape


def _add_lit(state: _Topic, grey: NDArray[np.uint8]) -> None:
    """Fold a frame (or a shard's mask) into the per-pixel maximum; a frame of another size
    makes the mask unusable (the fisheye border is then not excluded)."""
    if state.lit is None:
        state.lit = grey.copy()
    elif state.lit.shape == grey.shape:
        np.maximum(state.lit, grey, out=state.lit)
    else:
        state.mask_usable = False


class ImageQuality:
    """Brightness, clipping and sharpness of every camera topic."""

    def __init__(
        self,
        *,
        max_clipped: float = 0.5,
        blur_ratio: float = 0.25,
        name: str | None = None,
    ) -> None:
        if not 0 < max_clipped < 1:
            msg = f"max_clipped must be a fraction in (0, 1), got {max_clipped}"
            raise BagscopeError(msg)
        if not 0 < blur_ratio < 1:
            msg = f"blur_ratio must be a fraction in (0, 1), got {blur_ratio}"
            raise BagscopeError(msg)
        self.name = name or "image"
        self.max_clipped = float(max_clipped)
        self.blur_ratio = float(blur_ratio)
        self._topics: dict[str, _Topic] = {}
        self._origin_ns = 0

    # ------------------------------------------------------------------------------ reading

    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        self._topics = {
            t.name: _Topic()
            for t in context.info.topics
            if any(k in IMAGE_TYPES for k in t.msgtype.split(" | "))
        }

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(self._topics)

    def on_message(self, msg: Message) -> None:
        state = self._topics[msg.topic]
        state.messages += 1
        try:
            image: CameraImage = msg.decode()  # type: ignore[assignment]
            grey = self._grey(msg, image)
        except DecodeError as err:
            if _unsupported(msg):
                state.not_judged = state.not_judged or f"{err}: not judged"
                return
            note_corrupt(state, msg.log_time_ns, err)
            return
        state.times.append(msg.log_time_ns)
        if grey is None:
            self._unjudged(state)
        else:
            self._measure(state, grey)

    def _grey(self, msg: Message, image: CameraImage) -> NDArray[np.uint8] | None:
        """The small grey image (None when the encoding is not 8-bit)."""
        if image.compressed:
            blob = _compressed_bytes(msg)
            if blob[: len(JPEG_MAGIC)].tobytes() == JPEG_MAGIC:
                return _jpeg_grey(blob, image.encoding)
        return _small_grey(image.pixels)

    def _unjudged(self, state: _Topic) -> None:
        state.judged.append(0)
        for column in (state.brightness, state.blur):
            column.append(math.nan)
        for counts in (state.dark, state.bright, state.pixels):
            counts.append(0)
        if not state.not_judged:
            state.not_judged = "not 8-bit (depth, thermal or 16-bit): not judged"

    def _measure(self, state: _Topic, grey: NDArray[np.uint8]) -> None:
        """Record one frame's statistics."""
        state.judged.append(1)
        mean = float(grey.mean())
        state.brightness.append(mean)
        state.dark.append(int(np.count_nonzero(grey <= _DARK)))
        state.bright.append(int(np.count_nonzero(grey >= _BRIGHT)))
        state.pixels.append(grey.size)
        g = grey.astype(np.int16)
        lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
        state.blur.append(float(lap.var()) if lap.size else math.nan)
        _add_lit(state, grey)

    # ------------------------------------------------------------------------------ shards

    def shard_state(self) -> dict[str, _Topic]:
        return self._topics

    def merge_shards(self, states: Sequence[dict[str, _Topic]]) -> None:
        """Columns joined in time order; the lit mask is the pixel maximum over every shard
        (a maximum is a maximum however the frames are grouped)."""
        from dataclasses import replace

        from bagscope.pipeline.shards import merge_values

        plain = [{t: replace(v, lit=None) for t, v in s.items()} for s in states]
        merged: dict[str, _Topic] = merge_values(plain)
        for topic, state in merged.items():
            for lit in (s[topic].lit for s in states if topic in s):
                if lit is not None:
                    _add_lit(state, lit)
        self._topics = merged

    # ------------------------------------------------------------------------------ results

    def finish(self) -> StageResult:
        return per_topic_result(
            self._topics,
            self._finish_topic,
            name="images",
            none="no Image or CompressedImage topic in the log",
        )

    def _finish_topic(self, result: StageResult, topic: str, state: _Topic) -> None:
        times = np.frombuffer(state.times, dtype=np.int64)
        judged = np.frombuffer(state.judged, dtype=np.int8).astype(bool)
        dark_share, bright_share = self._clipped(state, judged)
        self._metrics(
            result.metrics, topic, state=state, times=times, dark=dark_share, bright=bright_share
        )
        corrupt_findings(result, topic, state, noun="images")
        if state.not_judged and not judged.any():
            for name in ("exposure", "sharpness"):
                result.checks.append(skip_check(name, topic, state.not_judged))
        elif times.size:
            clipped = self._exposure(
                result, topic, times=times, dark_share=dark_share, bright_share=bright_share
            )
            self._blurry(result, topic, state=state, times=times, usable=judged & ~clipped)
        if times.size:
            result.figures.append(self._figure(topic, state, result.events))

    def _clipped(
        self, state: _Topic, judged: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per frame, the dark and bright shares of the lit pixels (NaN where not judged)."""
        pixels = np.frombuffer(state.pixels, dtype=np.int64).astype(np.float64)
        dark = np.frombuffer(state.dark, dtype=np.int64).astype(np.float64)
        bright = np.frombuffer(state.bright, dtype=np.int64).astype(np.float64)
        never_lit = 0
        if state.lit is not None and state.mask_usable:
            never_lit = int(np.count_nonzero(state.lit <= _DARK))
            if never_lit >= _NEVER_LIT_ALL * state.lit.size:
                never_lit = 0  # dark everywhere, always: that is the exposure, not the optics
        lit = np.maximum(pixels - never_lit, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dark_share = np.where(judged, (dark - never_lit) / lit, np.nan)
            bright_share = np.where(judged, bright / lit, np.nan)
        return dark_share, bright_share

    def _metrics(
        self,
        metrics: Metrics,
        topic: str,
        *,
        state: _Topic,
        times: NDArray[np.int64],
        dark: NDArray[np.float64],
        bright: NDArray[np.float64],
    ) -> None:
        metrics.add("frames", times.size, topic=topic)
        metrics.add("corrupt", len(state.corrupt_times), topic=topic)
        if not times.size:
            return
        series = {
            "brightness": np.frombuffer(state.brightness, dtype=np.float64),
            "blur": np.frombuffer(state.blur, dtype=np.float64),
            "dark_fraction": dark,
            "bright_fraction": bright,
        }
        for key, values in series.items():
            if np.isfinite(values).any():
                metrics.extend(key, times, values, topic=topic)
                metrics.add(f"{key}_median", float(np.nanmedian(values)), topic=topic)

    def _exposure(
        self,
        result: StageResult,
        topic: str,
        *,
        times: NDArray[np.int64],
        dark_share: NDArray[np.float64],
        bright_share: NDArray[np.float64],
    ) -> NDArray[np.bool_]:
        """Events for clipped frames; returns which frames are clipped."""
        with np.errstate(invalid="ignore"):
            under = dark_share > self.max_clipped
            over = bright_share > self.max_clipped
        events = []
        for kind, mask, shares, what in (
            ("underexposed", under, dark_share, f"<= {_DARK}"),
            ("overexposed", over, bright_share, f">= {_BRIGHT}"),
        ):
            for first, last in runs(mask):
                events.append(
                    self._clip_event(
                        topic, kind, times=times, shares=shares, run=(first, last), what=what
                    )
                )
        worst_dark = float(np.nanmax(dark_share)) if np.isfinite(dark_share).any() else 0.0
        worst_bright = float(np.nanmax(bright_share)) if np.isfinite(bright_share).any() else 0.0
        report_check(
            result,
            events,
            name="exposure",
            topic=topic,
            value=(
                f"{int(under.sum())} dark, {int(over.sum())} bright frames; worst "
                f"{worst_dark:.0%} dark, {worst_bright:.0%} bright"
            ),
            threshold=f"<= {self.max_clipped:.0%} of lit pixels clipped",
        )
        clipped: NDArray[np.bool_] = under | over
        return clipped

    def _clip_event(
        self,
        topic: str,
        kind: str,
        *,
        times: NDArray[np.int64],
        shares: NDArray[np.float64],
        run: tuple[int, int],
        what: str,
    ) -> Event:
        first, last = run
        count = last - first + 1
        worst = float(np.nanmax(shares[first : last + 1]))
        frames = f"{count} frame{'s' if count > 1 else ''}"
        span = format_duration(int(times[last] - times[first]))
        return Event(
            t_ns=int(times[first]),
            end_ns=int(times[last]),
            topic=topic,
            kind=kind,
            severity="warning",
            message=(
                f"{topic}: {kind} for {frames} ({span}): up to {worst:.0%} of the lit pixels "
                f"{what}, above {self.max_clipped:.0%}"
            ),
            evidence={
                "frames": count,
                "worst_share": worst,
                "max_clipped": self.max_clipped,
                "level": _DARK if kind == "underexposed" else _BRIGHT,
            },
        )

    def _blurry(
        self,
        result: StageResult,
        topic: str,
        *,
        state: _Topic,
        times: NDArray[np.int64],
        usable: NDArray[np.bool_],
    ) -> None:
        name = "sharpness"
        blur = np.frombuffer(state.blur, dtype=np.float64)
        usable = usable & np.isfinite(blur)
        if int(usable.sum()) < _MIN_FRAMES:
            why = f"{int(usable.sum())} unclipped frames: too few to judge"
            result.checks.append(skip_check(name, topic, why))
            return
        median = float(np.median(blur[usable]))
        if median <= 0:
            result.checks.append(skip_check(name, topic, "no texture in the frames to judge"))
            return
        limit = self.blur_ratio * median
        blurry = usable & (blur < limit)
        events = []
        for first, last in runs(blurry):
            count = last - first + 1
            worst = float(blur[first : last + 1].min())
            events.append(
                Event(
                    t_ns=int(times[first]),
                    end_ns=int(times[last]),
                    topic=topic,
                    kind="blurry",
                    severity="warning",
                    message=(
                        f"{topic}: {count} blurry frame{'s' if count > 1 else ''}: sharpness "
                        f"down to {worst / median:.0%} of the topic's median "
                        f"(limit {self.blur_ratio:.0%})"
                    ),
                    evidence={
                        "frames": count,
                        "worst_laplacian_var": worst,
                        "median_laplacian_var": median,
                        "blur_ratio": self.blur_ratio,
                    },
                )
            )
        lowest = float(blur[usable].min())
        report_check(
            result,
            events,
            name=name,
            topic=topic,
            value=f"lowest {lowest / median:.0%} of median; {int(blurry.sum())} blurry",
            threshold=f">= {self.blur_ratio:.0%} of the median Laplacian variance",
        )

    # ------------------------------------------------------------------------------ figure

    def _figure(self, topic: str, state: _Topic, events: list[Event]) -> FigureSpec:
        times = np.frombuffer(state.times, dtype=np.int64).copy()
        brightness = np.frombuffer(state.brightness, dtype=np.float64).copy()
        blur = np.frombuffer(state.blur, dtype=np.float64).copy()
        mine = [e for e in events if e.topic == topic]
        origin = self._origin_ns
        slug = topic.strip("/").replace("/", "_") or "image"

        def draw(fig: Figure) -> None:
            from bagscope.analyzers.plotting import TOPIC_COLOURS, mark_events, seconds, style_axes

            x = seconds(times.tolist(), origin)
            top = fig.add_subplot(2, 1, 1)
            bottom = fig.add_subplot(2, 1, 2, sharex=top)
            top.plot(x, brightness, color=TOPIC_COLOURS[0], lw=1.0)
            top.set_ylim(0, 255)
            bottom.plot(x, blur, color=TOPIC_COLOURS[1], lw=1.0)
            if np.isfinite(blur).any() and np.nanmin(blur) > 0:
                bottom.set_yscale("log")
            for ax in (top, bottom):
                mark_events(ax, mine, origin)
            style_axes(top, xlabel="", ylabel="mean grey (0-255)")
            style_axes(
                bottom, xlabel="time since log start (s)", ylabel="Laplacian variance (grey²)"
            )

        return FigureSpec(
            name=f"{self.name}_{slug}",
            title=f"{topic}: brightness and sharpness",
            draw=draw,
            size=(8.0, 4.4),
        )


def _unsupported(msg: Message) -> bool:
    """Whether a raw image failed for its encoding (one bagscope cannot read), not its bytes."""
    if msg.msgtype != "sensor_msgs/msg/Image":
        return False
    try:
        pixel_layout(str(msg.payload.encoding))  # type: ignore[attr-defined]
    except DecodeError:
        return True
    except Exception:  # a payload rosbags cannot read is corrupt, not exotic
        return False
    return False


def _compressed_bytes(msg: Message) -> NDArray[np.uint8]:
    """The compressed payload's bytes without rosbags when the message is plain CDR."""
    if msg.connection.serialization == "cdr":
        parsed = parse_compressed_image(msg.data)
        if parsed is not None:
            return parsed.data
    data = msg.payload.data  # type: ignore[attr-defined]
    return np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data


def _jpeg_grey(blob: NDArray[np.uint8], fmt: str) -> NDArray[np.uint8]:
    """The JPEG's luma, decoded at the smallest 1/8-step scale at least ``_TARGET_HEIGHT`` tall."""
    import simplejpeg

    try:
        grey = simplejpeg.decode_jpeg(
            blob, colorspace="GRAY", fastdct=True, min_height=_TARGET_HEIGHT
        )
    except ValueError as err:
        msg = f"cannot decode JPEG compressed image ({fmt!r}): {err}"
        raise DecodeError(msg) from err
    out: NDArray[np.uint8] = np.asarray(grey)[..., 0]
    return out


def _small_grey(pixels: NDArray[Any]) -> NDArray[np.uint8] | None:
    """A strided grey image about ``_TARGET_HEIGHT`` tall; None for other than 8-bit pixels."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or pixels.size == 0:
        return None
    step = max(1, pixels.shape[0] // _TARGET_HEIGHT)
    small = pixels[::step, ::step]
    if small.ndim == 2:
        return np.ascontiguousarray(small)
    if small.shape[2] == 1:
        return np.ascontiguousarray(small[..., 0])
    rgb = small[..., :3].astype(np.uint16)
    # ITU-R BT.601 luma in integers: (77 R + 150 G + 29 B) / 256
    grey = (rgb[..., 0] * 77 + rgb[..., 1] * 150 + rgb[..., 2] * 29) >> 8
    out: NDArray[np.uint8] = grey.astype(np.uint8)
    return out
