"""``onnx``: run a user's ONNX network (onnxruntime, CPU) on camera images or point clouds.

Everything around the network - resizing, normalising, layout, which point fields, padding,
and how to read the outputs - is a parameter of the pipeline file, so trying a model on a log
needs no Python. The session is created once (in ``setup``, so a missing or broken model stops
the run before any reading) and reused for every frame.

Outputs (``output``): ``raw`` - ``{output name: array}``; ``heatmap`` - a :class:`Heatmap`
(the first output squeezed to 2-D and its peak in the image's pixel coordinates);
``boxes`` - :class:`~bagscope.replay.decode.boxes.Boxes` from rows
``[x, y, z, l, w, h, yaw, score(, class)]`` in the input's frame.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.models.records import ModelInputError, points_from
from bagscope.pipeline.stage import Check, StageResult
from bagscope.replay.decode.boxes import Boxes

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import RunContext
    from bagscope.replay.frame import Frame

__all__ = ["Heatmap", "OnnxModel"]

_INPUT_KINDS = ("image", "points")
_OUTPUTS = ("raw", "heatmap", "boxes")
_LAYOUTS = ("NCHW", "NHWC")
_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
_BOX_COLUMNS = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class Heatmap:
    """A network's 2-D map for image ``topic`` (``width`` x ``height`` pixels): ``values`` as the
    network gave it, and its peak at ``(u, v)`` in the image's pixel coordinates (the map's
    cell centre scaled back to the image), with the peak's value ``score``."""

    topic: str
    width: int
    height: int
    values: NDArray[np.float32]
    u: float
    v: float
    score: float


def _fail(parameter: str, problem: str) -> BagscopeError:
    return BagscopeError(f"onnx {parameter}: {problem}")


def _numbers(value: Any, parameter: str, *, count: tuple[int, ...] | None = None) -> list[float]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        raise _fail(parameter, f"expected a number or a list of numbers, got {value!r}")
    if count is not None and len(items) not in count:
        want = " or ".join(str(c) for c in count)
        raise _fail(parameter, f"expected {want} numbers, got {len(items)}")
    return [float(v) for v in items]


class OnnxModel:
    """Run an ONNX network on each frame's image (``input_kind = "image"``) or points."""

    def __init__(
        self,
        *,
        name: str | None = None,
        model: str,
        input_kind: str = "image",
        topic: str | None = None,
        resize: list[int] | None = None,
        mean: float | list[float] = 0.0,
        std: float | list[float] = 1.0,
        layout: str = "NCHW",
        scale: float = 1.0 / 255.0,
        grey: bool = False,
        max_points: int | None = None,
        fields: list[str] | None = None,
        pad_value: float = 0.0,
        input_name: str | None = None,
        output_names: list[str] | None = None,
        output: str = "raw",
        score_threshold: float = 0.0,
        class_names: list[str] | None = None,
        intra_op_num_threads: int = 1,
    ) -> None:
        self.name = name or "onnx"
        if not isinstance(model, str) or not model:
            raise _fail("model", f"expected the path of an .onnx file, got {model!r}")
        path = Path(model).expanduser()
        if not path.is_file():
            raise _fail("model", f"no such file: {model}")
        self.model = path
        if input_kind not in _INPUT_KINDS:
            choices = ", ".join(_INPUT_KINDS)
            raise _fail("input_kind", f"expected one of {choices}, got {input_kind!r}")
        self.input_kind = input_kind
        if topic is not None and not isinstance(topic, str):
            raise _fail("topic", f"expected a topic or stage name, got {topic!r}")
        self.topic = topic
        self.resize: tuple[int, int] | None = None
        if resize is not None:
            size = list(resize) if isinstance(resize, list | tuple) else []
            if len(size) != 2 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
            ):
                raise _fail("resize", f"expected [width, height] in pixels, got {resize!r}")
            self.resize = (int(size[0]), int(size[1]))
        self.mean = np.asarray(_numbers(mean, "mean", count=(1, 3)), dtype=np.float32)
        self.std = np.asarray(_numbers(std, "std", count=(1, 3)), dtype=np.float32)
        if np.any(self.std == 0):
            raise _fail("std", "must not be zero")
        if layout not in _LAYOUTS:
            raise _fail("layout", f"expected one of {', '.join(_LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.scale = _numbers(scale, "scale", count=(1,))[0]
        if not isinstance(grey, bool):
            raise _fail("grey", f"expected true or false, got {grey!r}")
        self.grey = grey
        if grey and (len(self.mean) != 1 or len(self.std) != 1):
            raise _fail("mean", "a grey image has one channel: give one mean and one std")
        if max_points is not None and (
            isinstance(max_points, bool) or not isinstance(max_points, int) or max_points <= 0
        ):
            raise _fail("max_points", f"expected a positive integer, got {max_points!r}")
        self.max_points = max_points
        fields = ["x", "y", "z"] if fields is None else fields
        if (
            not isinstance(fields, list | tuple)
            or not fields
            or not all(isinstance(f, str) for f in fields)
        ):
            raise _fail("fields", f"expected a list of point field names, got {fields!r}")
        self.fields = list(fields)
        self.pad_value = _numbers(pad_value, "pad_value", count=(1,))[0]
        if input_name is not None and not isinstance(input_name, str):
            raise _fail("input_name", f"expected a string, got {input_name!r}")
        self.input_name = input_name
        if output_names is not None and (
            not isinstance(output_names, list | tuple)
            or not all(isinstance(n, str) for n in output_names)
        ):
            raise _fail("output_names", f"expected a list of names, got {output_names!r}")
        self.output_names = None if output_names is None else list(output_names)
        if output not in _OUTPUTS:
            raise _fail("output", f"expected one of {', '.join(_OUTPUTS)}, got {output!r}")
        if output == "heatmap" and input_kind != "image":
            raise _fail("output", "a heatmap is read against an image: use input_kind = 'image'")
        self.output = output
        self.score_threshold = _numbers(score_threshold, "score_threshold", count=(1,))[0]
        if class_names is not None and (
            not isinstance(class_names, list | tuple)
            or not all(isinstance(c, str) for c in class_names)
        ):
            raise _fail("class_names", f"expected a list of names, got {class_names!r}")
        self.class_names = None if class_names is None else list(class_names)
        if (
            isinstance(intra_op_num_threads, bool)
            or not isinstance(intra_op_num_threads, int)
            or intra_op_num_threads < 0
        ):
            raise _fail(
                "intra_op_num_threads",
                f"expected an integer >= 0 (0: onnxruntime's choice), got {intra_op_num_threads!r}",
            )
        self.intra_op_num_threads = intra_op_num_threads
        self._session: Any = None
        self._input: str = ""
        self._dtype: type[np.generic] = np.float32
        self._fixed_points: int | None = None
        self._times: list[int] = []
        self._counts: list[int] = []

    # ------------------------------------------------------------------ session

    def setup(self, context: RunContext) -> None:
        self._ensure_session()

    def _ensure_session(self) -> Any:
        if self._session is not None:
            return self._session
        try:
            # Through importlib: onnxruntime ships no type information, and is optional.
            ort: Any = importlib.import_module("onnxruntime")
        except ImportError as err:
            msg = "the onnx stage needs onnxruntime: pip install onnxruntime"
            raise BagscopeError(msg) from err
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_num_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(self.model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problem = f"{self.model} is not a model onnxruntime can run: {first}"
            raise _fail("model", problem) from err
        inputs = {i.name: i for i in session.get_inputs()}
        name = self.input_name or session.get_inputs()[0].name
        if name not in inputs:
            raise _fail("input_name", f"the model has no input {name!r}; it has {list(inputs)}")
        outputs = [o.name for o in session.get_outputs()]
        for out in self.output_names or []:
            if out not in outputs:
                raise _fail("output_names", f"the model has no output {out!r}; it has {outputs}")
        spec = inputs[name]
        self._input = name
        self._dtype = _DTYPES.get(spec.type, np.float32)
        shape = list(spec.shape)
        if self.input_kind == "points" and len(shape) == 3 and isinstance(shape[1], int):
            self._fixed_points = shape[1]
        self._session = session
        return session

    # ------------------------------------------------------------------ frames

    def process(self, frame: Frame) -> Any:
        session = self._ensure_session()
        if self.input_kind == "image":
            tensor, meta = self._image_tensor(frame)
        else:
            tensor, meta = self._points_tensor(frame)
        results = session.run(self.output_names, {self._input: tensor})
        names = self.output_names or [o.name for o in session.get_outputs()]
        raw = {n: np.asarray(r) for n, r in zip(names, results, strict=True)}
        self._times.append(frame.t_ns)
        if self.output == "raw":
            self._counts.append(len(raw))
            return raw
        if self.output == "heatmap":
            heat = self._heatmap(raw[names[0]], meta)
            self._counts.append(1)
            return heat
        boxes = self._boxes(raw[names[0]], meta)
        self._counts.append(len(boxes))
        return boxes

    def _image_tensor(self, frame: Frame) -> tuple[NDArray[Any], dict[str, Any]]:
        topic = self._image_topic(frame)
        image = frame.images[topic]
        pixels = np.asarray(image.pixels)
        height, width = pixels.shape[:2]
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        pixels = pixels[:, :, :3]
        if self.resize is not None and (width, height) != self.resize:
            from PIL import Image

            if pixels.dtype != np.uint8:
                pixels = np.clip(pixels, 0, 255).astype(np.uint8)
            pixels = np.asarray(
                Image.fromarray(np.ascontiguousarray(pixels)).resize(
                    self.resize, Image.Resampling.BILINEAR
                )
            )
        values = pixels.astype(np.float32)
        if self.grey:
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
            values = (values @ weights)[:, :, None]
        values = (values * np.float32(self.scale) - self.mean) / self.std
        if self.layout == "NCHW":
            values = values.transpose(2, 0, 1)
        tensor = np.ascontiguousarray(values[None]).astype(self._dtype, copy=False)
        meta = {
            "topic": topic,
            "width": width,
            "height": height,
            "frame_id": image.frame_id,
            "stamp_ns": image.stamp_ns,
        }
        return tensor, meta

    def _image_topic(self, frame: Frame) -> str:
        if self.topic is None:
            if not frame.images:
                msg = "onnx: input_kind 'image' needs an image among the synced topics; none"
                raise ModelInputError(msg)
            return next(iter(frame.images))
        for topic in frame.images:
            if topic == self.topic or topic.lstrip("/") == self.topic.lstrip("/"):
                return topic
        msg = f"onnx topic {self.topic!r} is not a synced image topic; have {list(frame.images)}"
        raise ModelInputError(msg)

    def _points_tensor(self, frame: Frame) -> tuple[NDArray[Any], dict[str, Any]]:
        points = points_from(frame, self.topic)
        columns = []
        for field in self.fields:
            if field in ("x", "y", "z"):
                columns.append(points.xyz[:, "xyz".index(field)].astype(np.float32))
            elif field == "intensity" and points.intensity is not None:
                columns.append(points.intensity.astype(np.float32))
            elif points.topic in frame.clouds and field in frame.clouds[points.topic].fields:
                cloud = frame.clouds[points.topic]
                values = np.asarray(cloud.field(field), dtype=np.float32).reshape(-1)
                columns.append(values[cloud.finite_mask][points.index])
            else:
                raise _fail("fields", f"the points of {points.topic!r} have no field {field!r}")
        data = np.stack(columns, axis=1) if len(points) else np.zeros((0, len(self.fields)))
        rows = np.arange(len(points), dtype=np.int64)
        size = self.max_points or self._fixed_points
        if size is not None and len(data) > size:
            # An even subsample keeps the sweep's coverage; a prefix would keep one sector.
            rows = np.linspace(0, len(data) - 1, size).round().astype(np.int64)
            data = data[rows]
        if size is not None and len(data) < size:
            pad = np.full((size - len(data), data.shape[1]), self.pad_value, dtype=np.float32)
            data = np.concatenate([data, pad])
        tensor = np.ascontiguousarray(data[None]).astype(self._dtype, copy=False)
        meta = {
            "topic": points.topic,
            "frame_id": points.frame_id,
            "stamp_ns": points.stamp_ns,
            "rows": rows,
        }
        return tensor, meta

    def _heatmap(self, values: NDArray[Any], meta: dict[str, Any]) -> Heatmap:
        heat = np.squeeze(np.asarray(values))
        if heat.ndim != 2:
            msg = f"onnx output 'heatmap': the first output squeezes to shape {heat.shape}, not 2-D"
            raise ModelInputError(msg)
        rows, cols = heat.shape
        r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
        width, height = meta["width"], meta["height"]
        # Cell centres scale with the image: cell c covers [c, c + 1) * width / cols.
        u = (c + 0.5) * width / cols - 0.5
        v = (r + 0.5) * height / rows - 0.5
        return Heatmap(
            topic=meta["topic"],
            width=width,
            height=height,
            values=heat.astype(np.float32, copy=False),
            u=float(u),
            v=float(v),
            score=float(heat[r, c]),
        )

    def _boxes(self, values: NDArray[Any], meta: dict[str, Any]) -> Boxes:
        rows = np.asarray(values, dtype=np.float64)
        while rows.ndim > 2 and rows.shape[0] == 1:
            rows = rows[0]
        if rows.ndim != 2 or rows.shape[1] < _BOX_COLUMNS:
            msg = (
                f"onnx output 'boxes': the first output has shape {np.shape(values)}; expected "
                "(K, 7+) rows [x, y, z, l, w, h, yaw, score(, class)]"
            )
            raise ModelInputError(msg)
        scores = rows[:, 7] if rows.shape[1] > _BOX_COLUMNS else np.ones(len(rows))
        keep = scores >= self.score_threshold
        rows, scores = rows[keep], scores[keep]
        labels: list[str] = []
        if rows.shape[1] > _BOX_COLUMNS + 1:
            for k in rows[:, 8].round().astype(np.int64):
                names = self.class_names
                labels.append(names[k] if names is not None and 0 <= k < len(names) else str(k))
        else:
            labels = [""] * len(rows)
        return Boxes.build(
            stamp_ns=int(meta["stamp_ns"]),
            frame_id=str(meta["frame_id"]),
            centers=rows[:, 0:3],
            sizes=rows[:, 3:6],
            yaws=rows[:, 6],
            labels=labels,
            scores=scores,
        )

    # ------------------------------------------------------------------ end

    def finish(self) -> StageResult:
        result = StageResult()
        what = {"raw": "outputs", "heatmap": "heatmaps", "boxes": "boxes"}[self.output]
        result.metrics.extend(f"{what}_per_frame", self._times, self._counts)
        result.metrics.add("frames", len(self._times))
        result.checks.append(
            Check(
                name="network ran",
                topic=self.topic,
                status="pass" if self._times else "skip",
                value=f"{len(self._times)} frames through {self.model.name}",
                threshold="every frame",
                stage=self.name,
            )
        )
        return result
