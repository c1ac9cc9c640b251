"""The onnx stage with small networks built here (onnx.helper, fixed weights), run on a real
log through the runner, checked against numpy computing the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bagscope import open_log  # noqa: E402
from bagscope.builtins import BUILTIN_STAGES  # noqa: E402
from bagscope.errors import BagscopeError  # noqa: E402
from bagscope.models.onnx import Heatmap, OnnxModel  # noqa: E402
from bagscope.pipeline.config import build_stages, parse_pipeline  # noqa: E402
from bagscope.pipeline.runner import run_stages  # noqa: E402
from bagscope.pipeline.stage import StageResult  # noqa: E402
from bagscope.replay.decode.boxes import Boxes  # noqa: E402
from bagscope.replay.sync import make_policy  # noqa: E402
from tests.logwriter import (  # noqa: E402
    CAMERA,
    CAMERA_INFO,
    LIDAR,
    T0,
    LogSpec,
    camera_info,
    cloud,
    jpeg,
    write_log,
)

W, H = 64, 48
SPOTS = [(40 + 2 * i, 20 + i) for i in range(5)]  # (u, v) of the bright square per frame


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five frames: a 64x48 dark image with a bright 3x3 square at a known pixel, and a
    100-point cloud."""
    spec = LogSpec()
    rng = np.random.default_rng(3)
    for i, (u, v) in enumerate(SPOTS):
        stamp = T0 + i * 100_000_000
        xyz = rng.normal(size=(100, 3)).astype(np.float32) * 5
        spec.add(
            LIDAR, "sensor_msgs/msg/PointCloud2", stamp, lambda ts, s=stamp, p=xyz: cloud(ts, s, p)
        )
        rgb = np.full((H, W, 3), 20, dtype=np.uint8)
        rgb[v - 1 : v + 2, u - 1 : u + 2] = 250
        spec.add(
            CAMERA,
            "sensor_msgs/msg/CompressedImage",
            stamp + 1_000_000,
            lambda ts, s=stamp + 1_000_000, im=rgb: jpeg(ts, s, im),
        )
        spec.add(
            CAMERA_INFO,
            "sensor_msgs/msg/CameraInfo",
            stamp + 1_000_000,
            lambda ts, s=stamp + 1_000_000: camera_info(ts, s, W, H),
        )
    path = tmp_path_factory.mktemp("onnx") / "log.mcap"
    return write_log(path, spec, "mcap")


def _save(graph: Any, path: Path) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return str(path)


KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16


def conv_model(path: Path) -> str:
    """(1, 1, H, W) -> (1, 1, H, W): a fixed 3x3 blur, zero padded."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "k"], ["heat"], pads=[1, 1, 1, 1])],
        "blur",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 1, "h", "w"])],
        initializer=[numpy_helper.from_array(KERNEL.reshape(1, 1, 3, 3), "k")],
    )
    return _save(graph, path)


MLP_W = np.array([[1, -1, 0.5, 0], [0, 2, -1, 1], [-0.5, 0, 1, 3]], dtype=np.float32)
MLP_B = np.array([0.1, -0.2, 0.3, 0.0], dtype=np.float32)


def mlp_model(path: Path, n: int | str = "n") -> str:
    """(1, N, 3) -> (1, N, 4): relu(points @ W + b)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["points", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["pre"]),
            helper.make_node("Relu", ["pre"], ["features"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("points", TensorProto.FLOAT, [1, n, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, n, 4])],
        initializer=[numpy_helper.from_array(MLP_W, "w"), numpy_helper.from_array(MLP_B, "b")],
    )
    return _save(graph, path)


BOX_ROWS = np.array(
    [
        [10, 2, -1, 4.5, 1.9, 1.6, 0.3, 0.9, 0],
        [5, -3, -1, 0.6, 0.6, 1.8, -1.0, 0.7, 1],
        [20, 0, -1, 4.0, 2.0, 1.5, 0.0, 0.2, 0],  # below the threshold
    ],
    dtype=np.float32,
)


def boxes_model(path: Path) -> str:
    """Any (1, N, 3) -> the fixed (1, 3, 9) rows above (0 * mean(points) + rows)."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["points"], ["m"], keepdims=0),
            helper.make_node("Mul", ["m", "zero"], ["z"]),
            helper.make_node("Add", ["z", "rows"], ["boxes"]),
        ],
        "boxes",
        [helper.make_tensor_value_info("points", TensorProto.FLOAT, [1, "n", 3])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 9])],
        initializer=[
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
            numpy_helper.from_array(BOX_ROWS[None], "rows"),
        ],
    )
    return _save(graph, path)


class Keep:
    """Keeps each frame's pixels / points and the stage's output."""

    name = "keep"

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.rows: list[tuple[Any, Any, Any]] = []

    def process(self, frame: Any) -> None:
        cloud = frame.clouds[LIDAR]
        self.rows.append(
            (frame.images[CAMERA].pixels, cloud.xyz[cloud.finite_mask], frame.outputs[self.stage])
        )

    def finish(self) -> StageResult:
        return StageResult()


def _run(log_path: Path, stage: Any) -> tuple[list[tuple[Any, Any, Any]], Any]:
    keep = Keep(stage.name)
    with open_log(log_path) as log:
        result = run_stages(
            log,
            [stage, keep],
            sync=make_policy("nearest", [LIDAR, CAMERA], slop_ns=50_000_000),
            fail_fast=True,
        )
    assert len(keep.rows) == len(SPOTS)
    return keep.rows, result


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255


def _blur(img: np.ndarray) -> np.ndarray:
    padded = np.pad(img, 1)
    out = np.zeros_like(img)
    for dy in range(3):
        for dx in range(3):
            out += KERNEL[dy, dx] * padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]
    return out


def test_heatmap_matches_numpy_and_finds_the_spot(tmp_path: Path, log_path: Path) -> None:
    stage = OnnxModel(
        model=conv_model(tmp_path / "blur.onnx"), grey=True, output="heatmap", topic=CAMERA
    )
    rows, result = _run(log_path, stage)
    for (pixels, _, heat), (u, v) in zip(rows, SPOTS, strict=True):
        assert isinstance(heat, Heatmap)
        expected = _blur(_grey(pixels))
        np.testing.assert_allclose(heat.values, expected, rtol=1e-5, atol=1e-5)
        r, c = np.unravel_index(np.argmax(expected), expected.shape)
        assert (heat.u, heat.v) == (c, r)  # same size: the cell is the pixel
        assert abs(heat.u - u) <= 1
        assert abs(heat.v - v) <= 1
        assert (heat.width, heat.height) == (W, H)
    assert result.results[stage.name].checks[0].status == "pass"


def test_heatmap_resized_input_peaks_back_in_image_pixels(tmp_path: Path, log_path: Path) -> None:
    from PIL import Image

    stage = OnnxModel(
        model=conv_model(tmp_path / "blur.onnx"),
        grey=True,
        output="heatmap",
        resize=[32, 24],
        mean=0.5,
        std=0.25,
    )
    rows, _ = _run(log_path, stage)
    for (pixels, _, heat), (u, v) in zip(rows, SPOTS, strict=True):
        small = np.asarray(Image.fromarray(pixels).resize((32, 24), Image.Resampling.BILINEAR))
        expected = _blur((_grey(small) - 0.5) / 0.25)
        np.testing.assert_allclose(heat.values, expected, rtol=1e-4, atol=1e-4)
        r, c = np.unravel_index(np.argmax(expected), expected.shape)
        assert heat.u == pytest.approx((c + 0.5) * 2 - 0.5)
        assert heat.v == pytest.approx((r + 0.5) * 2 - 0.5)
        assert abs(heat.u - u) <= 1.5
        assert abs(heat.v - v) <= 1.5


def test_image_layout_nhwc_and_rgb_normalisation(tmp_path: Path, log_path: Path) -> None:
    """An identity network shows the exact tensor the stage feeds it."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "id",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "h", "w", 3])],
    )
    stage = OnnxModel(
        model=_save(graph, tmp_path / "id.onnx"),
        layout="NHWC",
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
    )
    rows, _ = _run(log_path, stage)
    pixels, _, out = rows[0]
    expected = (pixels.astype(np.float32) / 255 - np.float32([0.485, 0.456, 0.406])) / np.float32(
        [0.229, 0.224, 0.225]
    )
    np.testing.assert_allclose(out["y"][0], expected, rtol=1e-5, atol=1e-5)


def test_point_mlp_matches_numpy(tmp_path: Path, log_path: Path) -> None:
    stage = OnnxModel(model=mlp_model(tmp_path / "mlp.onnx"), input_kind="points")
    rows, _ = _run(log_path, stage)
    for _, xyz, out in rows:
        assert set(out) == {"features"}
        expected = np.maximum(xyz.astype(np.float32) @ MLP_W + MLP_B, 0)
        assert out["features"].shape == (1, len(xyz), 4)
        np.testing.assert_allclose(out["features"][0], expected, rtol=1e-5, atol=1e-5)


def test_points_padded_and_subsampled(tmp_path: Path, log_path: Path) -> None:
    padded = OnnxModel(
        model=mlp_model(tmp_path / "mlp.onnx"), input_kind="points", max_points=128, pad_value=1.0
    )
    rows, _ = _run(log_path, padded)
    _, xyz, out = rows[0]
    feats = out["features"][0]
    assert feats.shape == (128, 4)
    np.testing.assert_allclose(feats[:100], np.maximum(xyz @ MLP_W + MLP_B, 0), atol=1e-5)
    np.testing.assert_allclose(
        feats[100:], np.maximum(np.ones(3) @ MLP_W + MLP_B, 0)[None].repeat(28, 0), atol=1e-5
    )
    # A fixed-size model input sets max_points by itself; more points are evenly subsampled.
    fixed = OnnxModel(model=mlp_model(tmp_path / "mlp16.onnx", n=16), input_kind="points")
    rows, _ = _run(log_path, fixed)
    _, xyz, out = rows[0]
    pick = np.linspace(0, 99, 16).round().astype(int)
    np.testing.assert_allclose(
        out["features"][0], np.maximum(xyz[pick] @ MLP_W + MLP_B, 0), atol=1e-5
    )


def test_boxes_output(tmp_path: Path, log_path: Path) -> None:
    stage = OnnxModel(
        model=boxes_model(tmp_path / "boxes.onnx"),
        input_kind="points",
        output="boxes",
        score_threshold=0.5,
        class_names=["car", "pedestrian"],
    )
    rows, result = _run(log_path, stage)
    for i, (_, _, boxes) in enumerate(rows):
        assert isinstance(boxes, Boxes)
        assert boxes.frame_id == "lidar"
        assert boxes.stamp_ns == T0 + i * 100_000_000
        assert boxes.labels == ("car", "pedestrian")
        np.testing.assert_allclose(boxes.centers, BOX_ROWS[:2, :3], atol=1e-6)
        np.testing.assert_allclose(boxes.sizes, BOX_ROWS[:2, 3:6], atol=1e-6)
        np.testing.assert_allclose(boxes.yaws, BOX_ROWS[:2, 6], atol=1e-6)
        np.testing.assert_allclose(boxes.scores, BOX_ROWS[:2, 7], atol=1e-6)
    assert result.results[stage.name].metrics.series("boxes_per_frame")[1] == [2.0] * 5


def test_pipeline_file(tmp_path: Path, log_path: Path) -> None:
    model = mlp_model(tmp_path / "mlp.onnx")
    text = f"""
[[stages]]
use = "onnx"
name = "features"
model = "{model}"
input_kind = "points"
fields = ["x", "y", "z"]
max_points = 120
intra_op_num_threads = 1
"""
    (stage,) = build_stages(parse_pipeline(text, source="p.toml"), builtins=BUILTIN_STAGES)
    assert isinstance(stage, OnnxModel)
    assert stage.name == "features"
    rows, _ = _run(log_path, stage)
    _, xyz, out = rows[0]
    np.testing.assert_allclose(
        out["features"][0, :100], np.maximum(xyz @ MLP_W + MLP_B, 0), atol=1e-5
    )
    bad = text.replace("max_points = 120", 'layout = "CHW"')
    with pytest.raises(BagscopeError, match="layout"):
        build_stages(parse_pipeline(bad, source="p.toml"), builtins=BUILTIN_STAGES)


def test_bad_parameters_name_themselves(tmp_path: Path, log_path: Path) -> None:
    model = mlp_model(tmp_path / "mlp.onnx")
    with pytest.raises(BagscopeError, match=r"model.*no such file"):
        OnnxModel(model=str(tmp_path / "missing.onnx"))
    for kwargs, name in [
        ({"input_kind": "video"}, "input_kind"),
        ({"resize": [32]}, "resize"),
        ({"mean": [1, 2]}, "mean"),
        ({"std": 0}, "std"),
        ({"output": "masks"}, "output"),
        ({"max_points": 0}, "max_points"),
        ({"intra_op_num_threads": -1}, "intra_op_num_threads"),
    ]:
        with pytest.raises(BagscopeError, match=name) as err:
            OnnxModel(model=model, **kwargs)
        assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a network")
    with pytest.raises(BagscopeError, match="model"):
        _run(log_path, OnnxModel(model=str(garbage)))
    with pytest.raises(BagscopeError, match="input_name"):
        _run(log_path, OnnxModel(model=model, input_kind="points", input_name="nope"))
    with pytest.raises(BagscopeError, match="output_names"):
        _run(log_path, OnnxModel(model=model, input_kind="points", output_names=["nope"]))
