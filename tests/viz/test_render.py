"""replay render on a short simulated drive: what comes out decodes, has the frames and sizes
asked for, changes with the drive, and puts every part of the grid where the layout says."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.viz.render import (
    BACKGROUND_U8,
    SceneRenderer,
    compose,
    grid_layout,
    parse_size,
    renderer_size,
    resize,
)
from bagscope.viz.scene import build_scene
from bagscope.viz.view import ViewError, ViewSpec

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame

IMAGE = "/camera/image/compressed"
SIZE = (320, 180)


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    out = tmp_path_factory.mktemp("render") / "drive.mcap"
    scenario = make_scenario("urban", seed=5, duration_ns=1_500_000_000, beams=16, camera_size=SIZE)
    return simulate(out, scenario=scenario, workers=0).log_path


@pytest.fixture(scope="module")
def log_start(drive: Path) -> int:
    from bagscope.replay.log import open_log

    return open_log([drive]).info().start_ns


@pytest.fixture(scope="module")
def frame(drive: Path) -> Frame:
    from bagscope.pipeline.session import auto_sync, sync_policy
    from bagscope.replay.log import open_log

    log = open_log([drive])
    policy = sync_policy(log, auto_sync(log))
    assert policy is not None
    return list(log.frames(policy))[8]


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["render", *map(str, args)])
    return result.exit_code, result.output


def test_mp4_has_the_frames_and_size_asked_for(drive: Path, tmp_path: Path) -> None:
    import imageio_ffmpeg  # type: ignore[import-untyped]

    out = tmp_path / "drive.mp4"
    code, text = _run(
        drive, "-o", out, "--view", "bev", "--end", "1", "--fps", "5", "--size", "320x180"
    )
    assert code == 0, text
    assert "5 frames" in text
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = reader.__next__()
    assert tuple(meta["size"]) == SIZE
    frames = [np.frombuffer(f, np.uint8).reshape(SIZE[1], SIZE[0], 3) for f in reader]
    assert len(frames) == 5
    for a, b in itertools.pairwise(frames):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 0  # the drive moves
    assert not list(tmp_path.glob(".*partial*"))


def test_png_directory_is_named_by_log_time(drive: Path, tmp_path: Path, log_start: int) -> None:
    out = tmp_path / "frames"
    code, text = _run(
        drive, "-o", out, "--view", "chase", "--end", "0.6", "--fps", "5", "--size", "320x180"
    )
    assert code == 0, text
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{log_start + k * 200_000_000}.png" for k in range(3))


def test_at_writes_one_png(drive: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "shot.png"
    code, text = _run(
        drive, "-o", out, "--view", f"camera:{IMAGE}", "--at", "1", "--size", "320x180"
    )
    assert code == 0, text
    image = np.asarray(Image.open(out))
    assert image.shape == (180, 320, 3)
    assert image.std() > 10  # the camera image, not a blank frame


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--view", "top"], "unknown view 'top'"),
        (["--view", "camera:/nope"], f"image topics: {IMAGE}"),
        (["--size", "321x180"], "must be even"),
        (["--size", "big"], "expected WIDTHxHEIGHT"),
        (["--fps", "0"], "--fps 0"),
    ],
)
def test_user_errors_are_one_line(
    drive: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, text = _run(drive, "-o", tmp_path / "x.png", "--at", "0.5", *args)
    assert code == 2
    assert message in text
    assert "Traceback" not in text
    assert not (tmp_path / "x.png").exists()


def test_existing_output_needs_overwrite(drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    out.write_bytes(b"old")
    code, text = _run(drive, "-o", out, "--at", "0.5", "--size", "320x180", "--view", "bev")
    assert code == 2
    assert "--overwrite" in text
    assert out.read_bytes() == b"old"
    code, text = _run(
        drive, "-o", out, "--at", "0.5", "--size", "320x180", "--view", "bev", "--overwrite"
    )
    assert code == 0, text
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_run_of_another_log_is_refused(drive: Path, tmp_path: Path) -> None:
    from bagscope.pipeline.rundir import FORMAT_VERSION

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps(
            {
                "format": FORMAT_VERSION,
                "log_digest": "sha256-sampled:0",
                "logs": [{"path": "/data/other.mcap"}],
            }
        )
    )
    (run / "report.json").write_text("{}")
    (run / "events.jsonl").write_text("")
    code, text = _run(drive, "-o", tmp_path / "x.png", "--at", "0.5", "--run", run)
    assert code == 2
    assert f"run directory {run} is of another log (/data/other.mcap)" in text


def test_grid_puts_the_panels_where_the_layout_says(frame: Frame, log_start: int) -> None:
    from bagscope.pipeline.stage import Event

    spec = ViewSpec(view="grid", size=SIZE)
    scene = build_scene(frame, spec, log_start_ns=log_start)
    shapes = [p.image.shape[:2] for p in scene.panels]
    renderer = SceneRenderer(size=renderer_size(spec, shapes))
    event = Event(
        t_ns=log_start + 1_500_000_000,
        end_ns=log_start + 1_600_000_000,
        topic=None,
        kind="x",
        severity="error",
        message="x",
    )
    image = compose(
        scene, spec, renderer=renderer, span=(log_start, log_start + 2_000_000_000), events=[event]
    )
    assert image.shape == (180, 320, 3)
    layout = grid_layout(SIZE, shapes)
    (panel,) = scene.panels
    x, y, w, h = layout.panels[0]
    np.testing.assert_array_equal(image[y : y + h, x : x + w], resize(panel.image, (w, h)))
    vx, vy, vw, vh = layout.view
    assert vx + vw <= x  # the 3D view is left of the panels
    view = image[vy + 30 : vy + vh, vx : vx + vw]  # below the caption
    assert (np.abs(view.astype(int) - BACKGROUND_U8).sum(axis=2) > 30).mean() > 0.02
    sx, sy, sw, sh = layout.strip
    assert sy == vh
    strip = image[sy : sy + sh, sx : sx + sw]
    red = np.all(strip == (235, 60, 60), axis=2)  # the error's tick
    assert red.any()


def test_bev_draws_returns_where_they_are(frame: Frame) -> None:
    spec = ViewSpec(view="bev", size=SIZE)
    scene = build_scene(frame, spec, panels=False)
    image = SceneRenderer(size=SIZE).render(scene, preset="bev")
    background = image[0, 0]
    (layer,) = scene.points
    ego = scene.ego
    heading = ego[:2, 0] / np.linalg.norm(ego[:2, 0])
    left = np.array([-heading[1], heading[0]])
    rel = layer.xyz[:, :2].astype(np.float64) - ego[:2, 3]
    # top-down pinhole 60 deg vertical fov, 30 m from the centre to the top edge, heading up
    scale = (SIZE[1] / 2) / 30.0
    eye_height = 30.0 / math.tan(math.radians(30.0))
    depth = eye_height - (layer.xyz[:, 2] - ego[2, 3])
    u = SIZE[0] / 2 - (rel @ left) * scale * eye_height / depth
    v = SIZE[1] / 2 - (rel @ heading) * scale * eye_height / depth
    inside = (u >= 2) & (u < SIZE[0] - 2) & (v >= 12) & (v < SIZE[1] - 2)
    ui, vi = u[inside].astype(int), v[inside].astype(int)
    assert len(ui) > 500
    near = np.zeros(len(ui), bool)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            near |= np.any(image[vi + dv, ui + du] != background, axis=1)
    assert near.mean() > 0.9
    # and most of the image is background where the scene has nothing
    assert np.all(image == background, axis=2).mean() > 0.5


def test_parse_size() -> None:
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(ViewError):
        parse_size("0x0")
