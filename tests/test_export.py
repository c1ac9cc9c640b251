"""``replay export``: KITTI and Parquet data sets from a simulated drive, checked file by file."""

from __future__ import annotations

import csv
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import bagscope.cli  # noqa: F401  - before the command module (import order matters)
from bagscope.commands.export import export
from bagscope.export import (
    box_corners,
    kitti_calib_text,
    kitti_label_lines,
    parse_kitti_calib,
)
from bagscope.replay.decode.boxes import Boxes

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from bagscope.replay.frame import Frame

FRAMES = 10  # a 1 s drive, lidar at 10 Hz
# The simulator's mounting: lidar x forward, y left, z up; camera optical z forward, y down.
VELO_TO_CAM = np.array(
    [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.3], [1.0, 0.0, 0.0, -1.6], [0, 0, 0, 1.0]]
)
P2 = np.array([[100.0, 0.0, 80.0, 0.0], [0.0, 100.0, 45.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def _truth(frame: Frame) -> Boxes:
    boxes = frame.messages["/ground_truth/objects"].decode()
    assert isinstance(boxes, Boxes)
    return boxes


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("export")(export)

    @app.command("dummy")
    def dummy() -> None:
        """A second command, so typer keeps ``export`` as a subcommand."""

    return app


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["export", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    out = tmp_path_factory.mktemp("export") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=7, duration_ns=1_000_000_000, beams=16, camera_size=(160, 90)
    )
    return simulate(out, scenario=scenario, workers=0).log_path


@pytest.fixture(scope="module")
def frames(drive: Path) -> list[Frame]:
    """The synced frames export sees (auto sync with the ground truth), pixels decoded."""
    from bagscope.pipeline.runner import run_stages
    from bagscope.pipeline.session import auto_sync, sync_policy, truth_topics
    from bagscope.pipeline.stage import StageResult
    from bagscope.replay.log import open_log

    seen: list[Frame] = []

    class Keep:
        name = "keep"

        def process(self, frame: Frame) -> None:
            seen.append(frame)

        def finish(self) -> StageResult:
            return StageResult()

    with open_log(drive) as log:
        policy = sync_policy(log, auto_sync(log, also=truth_topics(log)))
        run_stages(log, [Keep()], sync=policy)
    return seen


@pytest.fixture(scope="module")
def kitti(drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kitti") / "ds"
    code, output = _invoke(str(drive), "-o", str(out), "--every", "2")
    assert code == 0, output
    assert "wrote 5 samples (10 synced frames, every 2)" in output
    assert "divided by 255" in output
    return out


def test_kitti_layout_names_and_counts(kitti: Path, frames: list[Frame]) -> None:
    assert len(frames) == FRAMES
    expected = [f"{i:06d}" for i in range(math.ceil(FRAMES / 2))]
    for folder, ext in (("velodyne", "bin"), ("image_2", "png"), ("calib", "txt")):
        assert sorted(p.name for p in (kitti / folder).iterdir()) == [
            f"{s}.{ext}" for s in expected
        ]
    assert sorted(p.name for p in (kitti / "label_2").iterdir()) == [f"{s}.txt" for s in expected]
    with (kitti / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["sample"]) for r in rows] == list(range(5))
    assert [r["velodyne_bin"] for r in rows] == [f"velodyne/{s}.bin" for s in expected]
    assert "velodyne_pcd" not in rows[0]
    assert [int(r["t_ns"]) for r in rows] == [f.t_ns for f in frames[::2]]
    assert [int(r["/camera/image/compressed"]) for r in rows] == [
        f.stamps_ns["/camera/image/compressed"] for f in frames[::2]
    ]
    assert not [p for p in kitti.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_velodyne_bin_is_the_frames_finite_points(kitti: Path, frames: list[Frame]) -> None:
    for sample, frame in enumerate(frames[::2]):
        cloud = frame.clouds["/lidar/points"]
        raw = (kitti / "velodyne" / f"{sample:06d}.bin").read_bytes()
        values = np.frombuffer(raw, dtype="<f4").reshape(-1, 4)
        finite = cloud.finite_mask
        np.testing.assert_array_equal(values[:, :3], cloud.xyz[finite].astype(np.float32))
        intensity = np.asarray(cloud.field("intensity"), np.float32)[finite]
        np.testing.assert_array_equal(values[:, 3], intensity * np.float32(1 / 255))


def test_image_is_the_camera_png(kitti: Path, frames: list[Frame]) -> None:
    from PIL import Image

    with Image.open(kitti / "image_2" / "000001.png") as png:
        pixels = np.asarray(png)
    np.testing.assert_array_equal(pixels, frames[2].images["/camera/image/compressed"].pixels)


def test_calib_parses_and_p2_is_camera_info(kitti: Path, frames: list[Frame]) -> None:
    calib = parse_kitti_calib((kitti / "calib" / "000000.txt").read_text())
    assert list(calib) == ["P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"]
    camera = frames[0].cameras["/camera/image/compressed"]
    for name in ("P0", "P1", "P2", "P3"):
        assert calib[name].shape == (3, 4)
        np.testing.assert_array_equal(calib[name], camera.P)
    np.testing.assert_array_equal(calib["R0_rect"], np.eye(3))
    assert frames[0].tf is not None
    np.testing.assert_array_equal(
        calib["Tr_velo_to_cam"], frames[0].tf.lookup(camera.frame_id, "lidar")[:3]
    )
    np.testing.assert_array_equal(calib["Tr_imu_to_velo"], np.eye(4)[:3])


def test_labels_project_inside_their_2d_box(kitti: Path, frames: list[Frame]) -> None:
    calib = parse_kitti_calib((kitti / "calib" / "000000.txt").read_text())
    proj = calib["P2"] @ np.vstack([calib["Tr_velo_to_cam"], [0, 0, 0, 1]])
    truth = _truth(frames[0])
    lines = (kitti / "label_2" / "000000.txt").read_text().splitlines()
    assert lines
    assert all(len(line.split()) == 15 for line in lines)
    corners = box_corners(truth.centers, truth.sizes, truth.yaws)
    matched = 0
    for line in lines:
        f = line.split()
        x1, y1, x2, y2 = (float(v) for v in f[4:8])
        # the truth box this line came from: the same bottom-centre depth and size
        z, h = float(f[13]), float(f[8])
        for i in range(len(truth)):
            cam = VELO_TO_CAM[:3, :3] @ truth.centers[i] + VELO_TO_CAM[:3, 3]
            if abs(cam[2] - z) < 0.006 and abs(truth.sizes[i, 2] - h) < 0.006:
                uvw = np.hstack([corners[i], np.ones((8, 1))]) @ proj.T
                u = np.clip(uvw[:, 0] / uvw[:, 2], 0, 159)
                v = np.clip(uvw[:, 1] / uvw[:, 2], 0, 89)
                assert (u >= x1 - 0.006).all()
                assert (u <= x2 + 0.006).all()
                assert (v >= y1 - 0.006).all()
                assert (v <= y2 + 0.006).all()
                matched += 1
                break
    assert matched == len(lines)


def test_hand_built_box_gives_the_kitti_line() -> None:
    boxes = Boxes.build(
        stamp_ns=0,
        frame_id="lidar",
        centers=[[10.0, 2.0, -0.5], [-10.0, 0.0, 0.0], [5.0, 50.0, 0.0]],
        sizes=[[4.0, 2.0, 1.5], [4.0, 2.0, 1.5], [4.0, 2.0, 1.5]],
        yaws=[0.3, 0.0, 0.0],
        labels=["car", "car", "pedestrian"],
    )
    lines = kitti_label_lines(boxes, velo_to_cam=VELO_TO_CAM, p2=P2, width=160, height=90)
    # Only the first is in view: the second is behind the camera, the third far to the left.
    assert len(lines) == 1
    # Bottom centre in lidar (10, 2, -1.25) -> camera (-2, 1.25 - 0.3, 10 - 1.6).
    # ry = -yaw - pi/2 = -1.8708; alpha = ry - atan2(-2, 8.4) = -1.6376.
    corners = box_corners(boxes.centers[:1], boxes.sizes[:1], boxes.yaws[:1])[0]
    cam = corners @ VELO_TO_CAM[:3, :3].T + VELO_TO_CAM[:3, 3]
    u = 100 * cam[:, 0] / cam[:, 2] + 80
    v = np.clip(100 * cam[:, 1] / cam[:, 2] + 45, 0, 89)
    bbox = f"{u.min():.2f} {v.min():.2f} {u.max():.2f} {v.max():.2f}"
    assert lines[0] == f"Car 0.00 0 -1.64 {bbox} 1.50 2.00 4.00 -2.00 0.95 8.40 -1.87"
    assert bbox == "41.83 36.12 73.31 60.34"


def test_rotation_y_follows_kitti_convention() -> None:
    """Heading forward (lidar +x) is ry = -pi/2; heading left (lidar +y) is ry = pi (-pi)."""
    for yaw, expected in ((0.0, "-1.57"), (math.pi / 2, "-3.14"), (-math.pi / 2, "0.00")):
        boxes = Boxes.build(
            stamp_ns=0,
            frame_id="lidar",
            centers=[[20.0, 0.0, 0.0]],
            sizes=[[4.0, 2.0, 1.5]],
            yaws=[yaw],
            labels=["Van"],
        )
        (line,) = kitti_label_lines(boxes, velo_to_cam=VELO_TO_CAM, p2=P2, width=160, height=90)
        assert line.split()[14] == expected
        assert line.split()[0] == "Van"


def test_calib_text_round_trips() -> None:
    calib = parse_kitti_calib(kitti_calib_text(P2 + 0.1234567891234567, VELO_TO_CAM))
    np.testing.assert_array_equal(calib["P2"], P2 + 0.1234567891234567)
    np.testing.assert_array_equal(calib["Tr_velo_to_cam"], VELO_TO_CAM[:3])


def test_parquet_rows(drive: Path, frames: list[Frame], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "pq"
    code, output = _invoke(str(drive), "-o", str(out), "--format", "parquet", "--every", "3")
    assert code == 0, output
    table = pq.read_table(out / "frames.parquet")
    chosen = frames[::3]
    assert table.num_rows == len(chosen) == 4
    assert table.column("t_ns").to_pylist() == [f.t_ns for f in chosen]
    points = np.asarray(table.column("points")[1].values.flatten(), np.float32).reshape(-1, 4)
    cloud = chosen[1].clouds["/lidar/points"]
    np.testing.assert_array_equal(points[:, :3], cloud.xyz[cloud.finite_mask].astype(np.float32))
    objects = pq.read_table(out / "objects.parquet")
    expected = sum(len(_truth(f)) for f in chosen)
    assert objects.num_rows == expected
    first = _truth(chosen[0])
    rows = objects.to_pylist()
    assert rows[0]["class"] == first.labels[0]
    assert [rows[0][k] for k in ("x", "y", "z")] == first.centers[0].tolist()
    assert rows[0]["yaw"] == first.yaws[0]


def test_refuses_existing_and_overwrites(drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("x")
    code, output = _invoke(str(drive), "-o", str(out), "--every", "5")
    assert code == 2
    assert output.strip() == f"error: {out} already exists; give another -o or --overwrite"
    code, output = _invoke(str(drive), "-o", str(out), "--every", "5", "--overwrite")
    assert code == 0, output
    assert not (out / "old.txt").exists()
    assert len(list((out / "velodyne").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


PCD_HEADER = [  # PCD v0.7 as documented, for n points
    "VERSION .7",
    "FIELDS x y z intensity",
    "SIZE 4 4 4 4",
    "TYPE F F F F",
    "COUNT 1 1 1 1",
    "WIDTH {n}",
    "HEIGHT 1",
    "VIEWPOINT 0 0 0 1 0 0 0",
    "POINTS {n}",
    "DATA binary",
]


def _parse_pcd(raw: bytes) -> tuple[list[str], NDArray[np.float32]]:
    """Header lines and (N, 4) rows of a binary PCD, read without the exporter's code: the
    header is the ASCII lines up to and including DATA; the rest is packed float32 rows."""
    lines: list[str] = []
    at = 0
    while not lines or not lines[-1].startswith("DATA"):
        end = raw.index(b"\n", at)
        lines.append(raw[at:end].decode("ascii"))
        at = end + 1
    fields = dict(line.split(" ", 1) for line in lines)
    assert fields["DATA"] == "binary"
    assert fields["SIZE"] == "4 4 4 4"
    assert fields["TYPE"] == "F F F F"
    n = int(fields["POINTS"])
    assert len(raw) - at == n * 16
    return lines, np.frombuffer(raw[at:], dtype="<f4").reshape(n, 4)


@pytest.fixture(scope="module")
def both(drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("both") / "ds"
    code, output = _invoke(str(drive), "-o", str(out), "--every", "4", "--clouds", "both")
    assert code == 0, output
    return out


def test_clouds_both_writes_pcd_beside_bin(both: Path, kitti: Path) -> None:
    stems = [f"{i:06d}" for i in range(3)]
    assert sorted(p.name for p in (both / "velodyne").iterdir()) == sorted(
        f"{s}.{ext}" for s in stems for ext in ("bin", "pcd")
    )
    with (both / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["velodyne_bin"], r["velodyne_pcd"]) for r in rows] == [
        (f"velodyne/{s}.bin", f"velodyne/{s}.pcd") for s in stems
    ]
    # Sample 0 is frame 0 in both exports: the .bin is the one checked against the frame.
    assert (both / "velodyne/000000.bin").read_bytes() == (
        kitti / "velodyne/000000.bin"
    ).read_bytes()


def test_pcd_header_is_pcd_v07(both: Path) -> None:
    for pcd in sorted((both / "velodyne").glob("*.pcd")):
        bin_rows = pcd.with_suffix(".bin").stat().st_size // 16
        lines, _ = _parse_pcd(pcd.read_bytes())
        assert bin_rows > 0
        assert lines == [line.format(n=bin_rows) for line in PCD_HEADER]


def test_pcd_points_equal_bin_points(both: Path) -> None:
    """The same rows, exactly, by an independent parse and by Open3D (positions through the
    legacy reader, intensity through the tensor one)."""
    import open3d as o3d

    for pcd in sorted((both / "velodyne").glob("*.pcd")):
        expected = np.frombuffer(pcd.with_suffix(".bin").read_bytes(), "<f4").reshape(-1, 4)
        _, rows = _parse_pcd(pcd.read_bytes())
        np.testing.assert_array_equal(rows, expected)
        legacy = o3d.io.read_point_cloud(pcd, format="pcd")
        np.testing.assert_array_equal(np.asarray(legacy.points), expected[:, :3])
        tensor = o3d.t.io.read_point_cloud(pcd)
        np.testing.assert_array_equal(tensor.point.positions.numpy(), expected[:, :3])
        np.testing.assert_array_equal(tensor.point.intensity.numpy().reshape(-1), expected[:, 3])


def test_clouds_pcd_alone_writes_no_bin(drive: Path, tmp_path: Path, both: Path) -> None:
    out = tmp_path / "ds"
    code, output = _invoke(str(drive), "-o", str(out), "--every", "8", "--clouds", "PCD")
    assert code == 0, output
    assert sorted(p.name for p in (out / "velodyne").iterdir()) == ["000000.pcd", "000001.pcd"]
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["velodyne_pcd"] for r in rows] == ["velodyne/000000.pcd", "velodyne/000001.pcd"]
    assert "velodyne_bin" not in rows[0]
    # Frame 0 is sample 0 of both exports: the same bytes whichever kinds are asked for.
    assert (out / "velodyne/000000.pcd").read_bytes() == (both / "velodyne/000000.pcd").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "coco"], "error: --format coco: choose one of kitti, parquet"),
        (["--every", "0"], "error: --every 0: must be 1 or more"),
        (["--clouds", "PLY"], "error: --clouds ply: choose one of bin, pcd, both"),
        (
            ["--format", "parquet", "--clouds", "pcd"],
            "error: --clouds pcd: only --format kitti writes cloud files (parquet keeps points "
            "in frames.parquet)",
        ),
        (
            ["--labels", "/imu"],
            "error: --labels /imu: not a stage of the pipeline nor a synced topic "
            "(/lidar/points, /camera/image/compressed, /ground_truth/objects)",
        ),
    ],
)
def test_one_line_errors(drive: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _invoke(str(drive), "-o", str(tmp_path / "ds"), *args)
    assert code == 2
    assert output.strip() == message
    assert sorted(tmp_path.iterdir()) == []


def test_labels_from_a_stage(drive: Path, tmp_path: Path) -> None:
    """A stage's Boxes are the labels; a pipeline [sync] without the truth topic is used."""
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        '[source]\ntopics = ["/lidar/points", "/camera/image/compressed"]\n'
        '[sync]\npolicy = "nearest"\nslop = "100ms"\n'
        '[[stages]]\nname = "fixed"\nuse = "tests.test_export:FixedBoxes"\n'
    )
    out = tmp_path / "ds"
    code, output = _invoke(
        str(drive), "-o", str(out), "--pipeline", str(pipeline), "--labels", "fixed"
    )
    assert code == 0, output
    assert "and 10 objects from fixed" in output
    line = (out / "label_2" / "000000.txt").read_text().splitlines()
    assert len(line) == 1
    assert line[0].split()[0] == "Pedestrian"
    assert line[0].split()[8:] == ["1.80", "0.60", "0.50", "0.00", "1.50", "8.40", "-1.57"]


class FixedBoxes:
    """A stage that "detects" one pedestrian 10 m straight ahead of the lidar every frame."""

    def __init__(self, name: str = "fixed") -> None:
        self.name = name

    def process(self, frame: Frame) -> Boxes:
        return Boxes.build(
            stamp_ns=frame.t_ns,
            frame_id="lidar",
            centers=[[10.0, 0.0, -0.9]],
            sizes=[[0.5, 0.6, 1.8]],
            yaws=[0.0],
            labels=["pedestrian"],
        )

    def finish(self) -> object:
        from bagscope.pipeline.stage import StageResult

        return StageResult()
