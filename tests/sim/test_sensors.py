"""Simulated lidar and camera: returns land on real surfaces, and the two sensors agree."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bagscope.sim.camera import intrinsics, pixel_rays, render
from bagscope.sim.config import CameraSpec, LidarSpec, Scenario, make_scenario
from bagscope.sim.lidar import INTENSITY_SCALE, LidarSweep, simulate_sweep
from bagscope.sim.world import ACTOR_ID_BASE, World, build_world

SECOND = 1_000_000_000
T0 = 6 * SECOND


@pytest.fixture(scope="module")
def urban() -> tuple[Scenario, World]:
    scenario = make_scenario("urban", seed=11)
    return scenario, build_world(scenario)


@pytest.fixture(scope="module")
def sweep(urban: tuple[Scenario, World]) -> LidarSweep:
    scenario, world = urban
    return simulate_sweep(world, scenario.lidar, T0, np.random.default_rng(1))


def to_odom(world: World, spec: LidarSpec, sweep: LidarSweep) -> np.ndarray:
    """Each point through the lidar pose at its own firing time."""
    times = sweep.t_start_ns + np.round(sweep.t.astype(np.float64) * 1e9).astype(np.int64)
    uniq, inverse = np.unique(times, return_inverse=True)
    poses = (world.ego_poses(uniq) @ spec.mount.to_matrix())[inverse]
    return np.asarray(np.einsum("nij,nj->ni", poses[:, :3, :3], sweep.xyz) + poses[:, :3, 3])


def carry_to(
    world: World, sweep: LidarSweep, odom: np.ndarray, pick: np.ndarray, t_ns: int
) -> np.ndarray:
    """Actor points of ``pick`` moved along with their actor from their firing time to
    ``t_ns``: an oncoming car covers 15 cm in the 12 ms between beam and shutter."""
    at_t = {a.track_id: a.pose for a in world.actors(t_ns)}
    times = sweep.t_start_ns + np.round(sweep.t.astype(np.float64) * 1e9).astype(np.int64)
    out: np.ndarray = odom[pick].copy()
    idx = np.flatnonzero(pick)
    for t in np.unique(times[idx]):
        then = {a.track_id: a.pose for a in world.actors(int(t))}
        for j in np.flatnonzero(times[idx] == t):
            tid = int(sweep.object_id[idx[j]])
            moved = at_t[tid] @ np.linalg.solve(then[tid], np.append(out[j], 1.0))
            out[j] = moved[:3]
    return out


def classes(world: World, object_id: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(object_id, return_inverse=True)
    names: np.ndarray = np.array([world.object_class(int(i)) for i in uniq])
    return names[inverse]


# -------------------------------------------------------------------------------------- lidar
def test_sweep_layout(urban: tuple[Scenario, World], sweep: LidarSweep) -> None:
    spec = urban[0].lidar
    n = sweep.xyz.shape[0]
    assert 0.6 * spec.beams * spec.azimuth_steps < n < spec.beams * spec.azimuth_steps
    assert sweep.xyz.dtype == np.float32
    assert sweep.xyz.shape == (n, 3)
    assert sweep.intensity.dtype == np.float32
    assert sweep.t.dtype == np.float32
    assert sweep.ring.dtype == np.uint16
    assert sweep.object_id.dtype == np.int32
    assert set(np.unique(sweep.ring)) == set(range(spec.beams))
    assert np.all(np.diff(sweep.t) >= 0)  # firing order
    assert sweep.t.min() >= 0.0
    assert sweep.t.max() < 1.0 / spec.rate_hz
    assert sweep.intensity.min() >= 0.0
    assert sweep.intensity.max() <= INTENSITY_SCALE
    ranges = np.linalg.norm(sweep.xyz, axis=1)
    assert ranges.min() >= spec.min_range_m - 0.1
    assert ranges.max() <= spec.max_range_m + 0.1
    # Ring r is beam r's elevation, lowest first.
    elevation = np.degrees(np.arcsin(sweep.xyz[:, 2] / ranges))
    step = (spec.vfov_deg[1] - spec.vfov_deg[0]) / (spec.beams - 1)
    np.testing.assert_allclose(elevation, spec.vfov_deg[0] + sweep.ring * step, atol=0.05)


def test_sweep_is_deterministic_from_the_rng(urban: tuple[Scenario, World]) -> None:
    scenario, world = urban
    spec = replace(scenario.lidar, beams=16)
    a = simulate_sweep(world, spec, T0, np.random.default_rng(5))
    b = simulate_sweep(world, spec, T0, np.random.default_rng(5))
    c = simulate_sweep(world, spec, T0, np.random.default_rng(6))
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    assert a.xyz.shape != c.xyz.shape or not np.array_equal(a.xyz, c.xyz)


def test_ground_returns_lie_on_the_ground(urban: tuple[Scenario, World], sweep: LidarSweep) -> None:
    scenario, world = urban
    names = classes(world, sweep.object_id)
    flat = np.isin(names, ["road", "lane_marking", "sidewalk", "ground"])
    assert flat.sum() > 10_000
    z = to_odom(world, scenario.lidar, sweep)[flat, 2]
    sigma = scenario.lidar.range_noise_m
    # Range noise projects onto z by sin(elevation) <= 1: 3 sigma bounds >= 99.7 % of them.
    assert np.mean(np.abs(z) < 3 * sigma) > 0.995
    assert np.abs(z).max() < 6 * sigma


def test_intensity_follows_reflectivity(urban: tuple[Scenario, World], sweep: LidarSweep) -> None:
    names = classes(urban[1], sweep.object_id)
    paint = np.median(sweep.intensity[names == "lane_marking"])
    asphalt = np.median(sweep.intensity[names == "road"])
    assert paint > 3 * asphalt


def test_actor_points_lie_in_their_boxes(urban: tuple[Scenario, World], sweep: LidarSweep) -> None:
    """Points of an actor, put in odom with the pose at their own time, sit inside that actor's
    box at that same time, moving actors included."""
    scenario, world = urban
    on_actor = np.flatnonzero(sweep.object_id >= ACTOR_ID_BASE)
    assert on_actor.size > 1000
    odom = to_odom(world, scenario.lidar, sweep)[on_actor]
    times = sweep.t_start_ns + np.round(sweep.t[on_actor].astype(np.float64) * 1e9).astype(np.int64)
    tol = 4 * scenario.lidar.range_noise_m + 1e-3
    checked, moving = 0, set()
    for t in np.unique(times)[::7]:
        boxes = {a.track_id: a for a in world.actors(int(t), within_m=130.0)}
        for i in np.flatnonzero(times == t):
            actor = boxes[int(sweep.object_id[on_actor[i]])]
            local = actor.pose[:3, :3].T @ (odom[i] - actor.pose[:3, 3])
            assert np.all(np.abs(local) <= actor.size / 2 + tol), (actor.track_id, local)
            checked += 1
            if np.linalg.norm(actor.velocity) > 1.0:
                moving.add(actor.track_id)
    assert checked > 100
    assert moving


def _seam_on_a_pole(world: World, spec: LidarSpec) -> tuple[LidarSpec, LidarSweep, np.ndarray]:
    """A cut angle that puts a pole ahead on both ends of the sweep, the sweep, and the mask
    of that pole's points: the seam aims between where the pole is seen at the start and at
    the end of the revolution."""
    probe = simulate_sweep(world, spec, T0, np.random.default_rng(2))
    is_pole = classes(world, probe.object_id) == "pole"
    xyz = probe.xyz[is_pole]
    odom = to_odom(world, spec, probe)[is_pole]
    rng_xy = np.hypot(xyz[:, 0], xyz[:, 1])
    azimuth = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    ahead = np.flatnonzero((np.abs(azimuth) < 25) & (rng_xy > 15) & (rng_xy < 60))
    ends = world.ego_poses(np.array([T0, T0 + spec.period_ns])) @ spec.mount.to_matrix()
    tried = np.zeros(xyz.shape[0], bool)
    for i in ahead[np.argsort(-rng_xy[ahead])]:
        if tried[i]:
            continue
        pole = np.linalg.norm(odom[:, :2] - odom[i, :2], axis=1) < 0.5
        tried |= pole
        center = np.append(odom[pole].mean(axis=0), 1.0)
        seen = [np.linalg.solve(pose, center) for pose in ends]
        angles = [math.degrees(math.atan2(p[1], p[0])) for p in seen]
        for offset in (0.0, -0.1, 0.1, -0.2, 0.2):
            seam = replace(spec, cut_azimuth_deg=float(np.mean(angles)) + offset)
            sweep = simulate_sweep(world, seam, T0, np.random.default_rng(3))
            here = to_odom(world, seam, sweep)
            mask = (classes(world, sweep.object_id) == "pole") & (
                np.linalg.norm(here[:, :2] - center[:2], axis=1) < 0.5
            )
            if (mask & (sweep.t < 0.01)).sum() >= 3 and (mask & (sweep.t > 0.09)).sum() >= 3:
                return seam, sweep, mask
    pytest.fail("no cut angle put a pole on both sides of the seam")


def test_motion_distortion_matches_ego_speed(urban: tuple[Scenario, World]) -> None:
    """Put the sweep's seam on a pole ahead: the pole's first and last columns, taken naively
    in one frame, are apart by the distance driven in between; de-skewed they coincide."""
    scenario, world = urban
    seam, sw, pole = _seam_on_a_pole(world, scenario.lidar)
    first, last = pole & (sw.t < 0.01), pole & (sw.t > 0.09)
    shift = sw.xyz[last].mean(axis=0) - sw.xyz[first].mean(axis=0)
    dt = float(sw.t[last].mean() - sw.t[first].mean())
    driven = world.ego(T0).linear_velocity[0] * dt
    assert driven > 0.7
    # Horizontal only, and up to the pole's own width (25 cm): the two ends of the seam catch
    # different faces of the pole with different beams.
    assert abs(np.linalg.norm(shift[:2]) - driven) < 0.3
    assert shift[0] < -0.6 * driven  # the pole comes closer as we drive at it
    odom = to_odom(world, seam, sw)
    deskewed = odom[last].mean(axis=0) - odom[first].mean(axis=0)
    assert np.linalg.norm(deskewed[:2]) < 0.3


def test_misses_give_no_points(urban: tuple[Scenario, World]) -> None:
    """Beams into the open sky return nothing, rather than points at infinity or zero."""
    scenario, world = urban
    up = replace(scenario.lidar, vfov_deg=(60.0, 89.0), beams=16)
    sw = simulate_sweep(world, up, T0, np.random.default_rng(0))
    assert sw.xyz.shape[0] < 0.2 * up.beams * up.azimuth_steps
    assert np.all(sw.object_id != 0)
    assert np.all(np.isfinite(sw.xyz))


# ------------------------------------------------------------------------------------- camera
def test_intrinsics() -> None:
    spec = CameraSpec(width=640, height=360, hfov_deg=90.0, distortion=(-0.1, 0.01, 0, 0, 0))
    k, d = intrinsics(spec)
    assert k[0, 0] == pytest.approx(320.0)
    assert k[1, 1] == pytest.approx(320.0)
    assert (k[0, 2], k[1, 2]) == (319.5, 179.5)
    np.testing.assert_array_equal(d, [-0.1, 0.01, 0, 0, 0])
    rays = pixel_rays(spec)
    assert rays.shape == (640 * 360, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-6)


def _project(k: np.ndarray, d: np.ndarray, cam_xyz: np.ndarray) -> np.ndarray:
    """plumb_bob forward model, as OpenCV's projectPoints."""
    x, y = cam_xyz[:, 0] / cam_xyz[:, 2], cam_xyz[:, 1] / cam_xyz[:, 2]
    k1, k2, p1, p2, k3 = d
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([k[0, 0] * xd + k[0, 2], k[1, 1] * yd + k[1, 2]], axis=-1)


@pytest.mark.parametrize("distortion", [(0.0,) * 5, (-0.25, 0.06, 0.001, -0.0015, 0.0)])
def test_lidar_actor_points_project_onto_their_pixels(
    urban: tuple[Scenario, World],
    sweep: LidarSweep,
    distortion: tuple[float, float, float, float, float],
) -> None:
    scenario, world = urban
    cam = replace(scenario.cameras[0], distortion=distortion)
    t_cam = T0 + 50_000_000  # the head faces forward half way through the sweep
    image = render(world, cam, t_cam, np.random.default_rng(0))
    k, d = intrinsics(cam)
    near_time = np.abs(sweep.t - 0.05) < 0.012
    pick = near_time & (sweep.object_id >= ACTOR_ID_BASE)
    odom = carry_to(world, sweep, to_odom(world, scenario.lidar, sweep), pick, t_cam)
    cam_pose = world.ego_poses(np.array([t_cam]))[0] @ cam.optical_matrix()
    local = (odom - cam_pose[:3, 3]) @ cam_pose[:3, :3]
    front = local[:, 2] > 1.0
    uv = np.round(_project(k, d, local[front])).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
    assert inside.sum() > 300
    ids = sweep.object_id[pick][front][inside]
    seen = image.object_id[uv[inside, 1], uv[inside, 0]]
    # Parallax: the camera sits 1.6 m ahead of the lidar and 0.3 m lower, so a few points are
    # hidden from it behind something nearer (a pole, another car). Of the others, nearly all
    # land on their actor; the misses are silhouette pixels (rounding to the pixel centre).
    depth = image.depth[uv[inside, 1], uv[inside, 0]]
    z = local[front][inside][:, 2]
    visible = depth > z - 0.3
    assert visible.mean() > 0.85
    assert np.mean((seen == ids)[visible]) >= 0.95
    assert np.mean(seen == ids) >= 0.85
    # Within a pixel of its actor, always (roofs seen edge-on from camera height included).
    u, v = uv[inside, 0], uv[inside, 1]
    near = np.zeros(ids.shape, bool)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            rows = np.clip(v + dv, 0, cam.height - 1)
            cols = np.clip(u + du, 0, cam.width - 1)
            near |= image.object_id[rows, cols] == ids
    assert np.mean(near[visible]) >= 0.99
    same = seen == ids
    assert np.median(np.abs(depth[same] - z[same])) < 0.1


def test_render_sky_markings_and_determinism(urban: tuple[Scenario, World]) -> None:
    scenario, world = urban
    cam = scenario.cameras[0]
    a = render(world, cam, T0, np.random.default_rng(4))
    b = render(world, cam, T0, np.random.default_rng(4))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.rgb.shape == (cam.height, cam.width, 3)
    assert a.rgb.dtype == np.uint8
    assert a.object_id.shape == a.depth.shape == (cam.height, cam.width)
    sky = a.object_id == 0
    assert sky.any()
    assert sky[0].mean() > 0.2
    assert np.all(np.isinf(a.depth[sky]))
    assert np.all(np.isfinite(a.depth[~sky]))
    sky_rgb = a.rgb[sky].astype(float)
    assert np.mean(sky_rgb[:, 2] > sky_rgb[:, 0]) > 0.95  # blue-ish
    names = classes(world, a.object_id.ravel()).reshape(a.object_id.shape)
    luma = a.rgb.astype(float).mean(axis=2)
    assert luma[names == "lane_marking"].mean() > luma[names == "road"].mean() + 60
    # Texture and sensor noise: a JPEG has something to encode, flat areas are not flat.
    assert luma[names == "road"].std() > 3.0


def test_rays_missing_everything_are_sky_in_the_image() -> None:
    scenario = make_scenario("highway", seed=3)
    world = build_world(scenario)
    up = replace(scenario.cameras[0], mount=replace(scenario.cameras[0].mount, pitch=-1.4))
    image = render(world, up, 2 * SECOND, np.random.default_rng(0))
    assert np.mean(image.object_id == 0) > 0.9
    sky = image.object_id == 0
    top = image.rgb[sky].astype(float)
    assert np.all(top[:, 2] >= top[:, 0])
    assert math.isinf(float(image.depth[0, 0]))


def test_sparse_tracing_matches_casting_every_pixel(urban: tuple[Scenario, World]) -> None:
    """The renderer casts every other pixel of every other row and fills in between from the
    face planes; every pixel cast the plain way must agree but for sub-2-pixel slivers."""
    scenario, world = urban
    cam = replace(scenario.cameras[0], width=320, height=180)
    image = render(world, cam, T0, np.random.default_rng(0))
    pose = world.ego_poses(np.array([T0]))[0] @ cam.optical_matrix()
    dirs = pixel_rays(cam)
    hits = world.raycast(np.broadcast_to(pose[:3, 3], dirs.shape), dirs @ pose[:3, :3].T, T0)
    object_id = hits.object_id.reshape(image.object_id.shape)
    depth = (hits.distance * dirs[:, 2]).reshape(image.depth.shape)
    same = image.object_id == object_id
    assert same.mean() > 0.999
    assert np.array_equal(np.isinf(image.depth), np.isinf(depth))
    finite = same & np.isfinite(depth)
    close = np.abs(image.depth[finite] - depth[finite]) <= 1e-3 * depth[finite] + 1e-3
    assert close.mean() > 0.999
