"""The simulated world: scenarios, ego motion, actors and ray casting."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bagscope.errors import BagscopeError
from bagscope.replay.errors import ReplayError
from bagscope.sim.config import CLASS_SIZES, CameraSpec, Mount, make_scenario
from bagscope.sim.errors import SimError
from bagscope.sim.world import ACTOR_ID_BASE, World, build_world

SECOND = 1_000_000_000
SPEEDS = {"urban": (8.0, 12.0), "highway": (22.0, 28.0), "parking": (1.5, 3.5)}


@pytest.fixture(scope="module", params=["urban", "highway", "parking"])
def world(request: pytest.FixtureRequest) -> World:
    return build_world(make_scenario(request.param, seed=7))


# ----------------------------------------------------------------------------------- config
def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(SimError, match="urban, highway, parking"):
        make_scenario("moon")
    assert issubclass(SimError, BagscopeError)
    assert not issubclass(SimError, ReplayError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beams": 48}, "16, 32, 64, 128"),
        ({"camera_size": (8, 8)}, "camera size"),
        ({"camera_rate_hz": 0.0}, "camera rate"),
        ({"duration_ns": 0}, "duration"),
    ],
)
def test_bad_knobs_are_sim_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SimError, match=match):
        make_scenario("urban", **kwargs)  # type: ignore[arg-type]


def test_scenario_knobs() -> None:
    sc = make_scenario(
        "highway", beams=128, camera_size=(1280, 720), raw_images=True, extra_cameras=True
    )
    assert sc.lidar.beams == 128
    assert len(sc.cameras) == 4
    assert {c.frame_id for c in sc.cameras} == {
        "camera_optical",
        "camera_left_optical",
        "camera_right_optical",
        "camera_rear_optical",
    }
    assert len({c.image_topic for c in sc.cameras}) == 4
    front = sc.cameras[0]
    assert (front.width, front.height) == (1280, 720)
    assert front.image_topic == "/camera/image_raw"
    assert front.info_topic == "/camera/camera_info"
    assert make_scenario("urban").cameras[0].image_topic == "/camera/image/compressed"


def test_mount_and_optical_conventions() -> None:
    yawed = Mount(x=1.0, y=2.0, z=3.0, yaw=math.pi / 2).to_matrix()
    np.testing.assert_allclose(yawed @ [1.0, 0.0, 0.0, 1.0], [1.0, 3.0, 3.0, 1.0], atol=1e-12)
    cam = CameraSpec(mount=Mount(x=1.5, z=1.4))
    optical = cam.optical_matrix()
    # Optical z looks forward (base x), optical x points right (-base y), y down (-base z).
    np.testing.assert_allclose(optical[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(optical[:3, :3] @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(optical[:3, :3] @ [0, 1, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(optical[:3, 3], [1.5, 0.0, 1.4])


# ---------------------------------------------------------------------------------- the ego
def test_same_seed_same_world_other_seed_other_world() -> None:
    a = build_world(make_scenario("urban", seed=3))
    b = build_world(make_scenario("urban", seed=3))
    c = build_world(make_scenario("urban", seed=4))
    t = 4 * SECOND
    np.testing.assert_array_equal(a.ego(t).pose, b.ego(t).pose)
    pa, pb, pc = (np.stack([s.pose for s in w.actors(t)]) for w in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert pa.shape != pc.shape or not np.allclose(pa, pc)


def test_ego_speed_is_realistic(world: World) -> None:
    lo, hi = SPEEDS[world.scenario.name]
    speeds = [world.ego(t).linear_velocity[0] for t in range(0, 20 * SECOND, SECOND // 4)]
    assert lo <= min(speeds)
    assert max(speeds) <= hi
    for t in (0, 5 * SECOND, 13 * SECOND):
        state = world.ego(t)
        assert state.linear_velocity[1] == 0.0  # a car does not slide sideways
        assert np.linalg.norm(state.linear_acceleration) < 3.0


def test_ego_derivatives_match_finite_differences(world: World) -> None:
    """Velocity, yaw rate and acceleration are the true derivatives of the pose: the IMU and
    odometry built from them agree with TF."""
    h = 1_000_000  # 1 ms
    for t in (1 * SECOND, 7 * SECOND + 123_456_789, 15 * SECOND):
        poses = world.ego_poses(np.array([t - h, t, t + h]))
        state = world.ego(t)
        np.testing.assert_allclose(poses[1], state.pose, atol=1e-9)
        rot = state.pose[:3, :3]
        p = poses[:, :3, 3]
        vel = (p[2] - p[0]) / 2e-3
        np.testing.assert_allclose(rot.T @ vel, state.linear_velocity, atol=1e-4)
        acc = (p[2] - 2 * p[1] + p[0]) / 1e-6
        np.testing.assert_allclose(rot.T @ acc, state.linear_acceleration, atol=2e-3)
        yaw = np.unwrap(np.arctan2(poses[:, 1, 0], poses[:, 0, 0]))
        np.testing.assert_allclose((yaw[2] - yaw[0]) / 2e-3, state.angular_velocity[2], atol=1e-5)


# ----------------------------------------------------------------------------------- actors
def test_actors_have_real_sizes_ids_and_consistent_velocities(world: World) -> None:
    t, h = 6 * SECOND, 1_000_000
    now = {a.track_id: a for a in world.actors(t)}
    later = {a.track_id: a for a in world.actors(t + h)}
    assert len(now) > 5
    assert min(now) >= ACTOR_ID_BASE
    moving = 0
    for tid, actor in now.items():
        assert world.object_class(tid) == actor.cls
        np.testing.assert_allclose(actor.size, CLASS_SIZES[actor.cls], rtol=0.08)
        assert actor.pose[2, 3] == pytest.approx(actor.size[2] / 2)
        if tid in later:
            fd = (later[tid].pose[:3, 3] - actor.pose[:3, 3]) / 1e-3
            np.testing.assert_allclose(fd, actor.velocity, atol=1e-3)
        moving += bool(np.linalg.norm(actor.velocity) > 0.5)
    assert moving >= 2
    assert any(np.linalg.norm(a.velocity) == 0.0 for a in now.values())  # parked


def _overlap_2d(
    a_pose: np.ndarray, a_size: np.ndarray, b_pose: np.ndarray, b_size: np.ndarray
) -> bool:
    """Separating-axis test of two yawed rectangles (footprints)."""

    def corners(pose: np.ndarray, size: np.ndarray) -> np.ndarray:
        hx, hy = size[0] / 2, size[1] / 2
        local = np.array([[hx, hy], [hx, -hy], [-hx, -hy], [-hx, hy]])
        return np.asarray(local @ pose[:2, :2].T + pose[:2, 3])

    ca, cb = corners(a_pose, a_size), corners(b_pose, b_size)
    for pose in (a_pose, b_pose):
        for axis in pose[:2, :2].T:
            pa, pb = ca @ axis, cb @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def test_nobody_drives_through_the_ego(world: World) -> None:
    ego_size = np.array([4.6, 1.9])
    for t in range(0, 20 * SECOND, SECOND // 4):
        ego = world.ego(t).pose
        for actor in world.actors(t, within_m=15.0):
            assert not _overlap_2d(ego, ego_size, actor.pose, actor.size), (t, actor.track_id)


def test_urban_pedestrians_cross_the_street() -> None:
    world = build_world(make_scenario("urban", seed=1))
    crossing = set()
    for t in range(0, 20 * SECOND, SECOND):
        for a in world.actors(t, within_m=80.0):
            if a.cls == "pedestrian":
                heading = a.pose[:3, :3].T @ a.velocity
                lateral = abs(float(np.dot(a.velocity[:2], world.ego(t).pose[:2, 1])))
                if lateral > 1.0 and np.linalg.norm(heading) > 1.0:
                    crossing.add(a.track_id)
    assert crossing


# ------------------------------------------------------------------------------------- rays
def test_ray_down_hits_the_road_ray_up_hits_nothing() -> None:
    world = build_world(make_scenario("urban", seed=2))
    ego = world.ego(3 * SECOND).pose
    origin = ego[:3, 3] + [0.0, 0.0, 2.0]
    hits = world.raycast(
        np.array([origin, origin]), np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 1.0]]), 3 * SECOND
    )
    assert hits.distance[0] == pytest.approx(2.0, abs=1e-5)
    surface = world.object_class(int(hits.object_id[0]))
    np.testing.assert_allclose(hits.normal[0], [0.0, 0.0, 1.0])
    if surface == "road":
        assert 0.05 < hits.reflectivity[0] < 0.2  # dark asphalt
    else:
        assert surface == "lane_marking"  # the ego may be on a crosswalk
        assert hits.reflectivity[0] > 0.5
    assert math.isinf(hits.distance[1])
    assert hits.object_id[1] == 0
    assert world.object_class(0) == "none"
    with pytest.raises(SimError, match="unknown object id"):
        world.object_class(ACTOR_ID_BASE + 10**6)


def test_surfaces_have_distinct_reflectivity() -> None:
    world = build_world(make_scenario("urban", seed=2))
    ego = world.ego(2 * SECOND).pose
    # Fan of downward rays across the street, from kerb to kerb and beyond.
    lateral = np.linspace(-15.0, 15.0, 3001)
    origins = ego[:3, 3] + lateral[:, None] * ego[:3, 1] + [0.0, 0.0, 1.0]
    down = np.tile([0.0, 0.0, -1.0], (lateral.size, 1))
    hits = world.raycast(origins, down, 2 * SECOND)
    names = np.array([world.object_class(int(i)) for i in hits.object_id])
    refl = {n: float(np.median(hits.reflectivity[names == n])) for n in set(names)}
    assert {"road", "lane_marking", "sidewalk"} <= set(refl)
    assert refl["lane_marking"] > 3 * refl["road"]
    assert refl["sidewalk"] > refl["road"]


def test_ray_hits_actor_box_face() -> None:
    world = build_world(make_scenario("highway", seed=5))
    t = 4 * SECOND
    ego = world.ego(t).pose
    actor = min(
        world.actors(t, within_m=80.0),
        key=lambda a: np.linalg.norm(a.pose[:2, 3] - ego[:2, 3]),
    )
    center = actor.pose[:3, 3]
    forward = actor.pose[:3, 0]  # the actor's heading, in odom
    origin = center + forward * (actor.size[0] / 2 + 3.0)
    hits = world.raycast(origin[None], -forward[None], t)
    assert hits.object_id[0] == actor.track_id
    assert hits.distance[0] == pytest.approx(3.0, abs=1e-3)
    np.testing.assert_allclose(hits.normal[0], forward, atol=1e-5)


def test_per_ray_times_place_moving_actors() -> None:
    """A ray aimed where a car will be 80 ms later hits it only when fired at that time."""
    world = build_world(make_scenario("highway", seed=5))
    t0, t1 = 4 * SECOND, 4 * SECOND + 80_000_000
    fast = [a for a in world.actors(t1, within_m=60.0) if np.linalg.norm(a.velocity) > 15.0]
    actor = fast[0]
    later_center = actor.pose[:3, 3]
    side = actor.pose[:3, 1]
    origin = later_center + side * (actor.size[1] / 2 + 2.0)
    # Aim at the car's front quarter: 80 ms earlier the car (> 1.2 m behind) was not there.
    target = later_center + actor.pose[:3, 0] * (actor.size[0] / 2 - 0.3)
    direction = (target - origin)[None]
    at_t1 = world.raycast(origin[None], direction, t0, ray_times_ns=np.array([t1]))
    at_t0 = world.raycast(origin[None], direction, t0, ray_times_ns=np.array([t0]))
    single = world.raycast(origin[None], direction, t1)
    assert at_t1.object_id[0] == actor.track_id == single.object_id[0]
    assert at_t1.distance[0] == pytest.approx(single.distance[0], abs=1e-4)
    assert at_t0.object_id[0] != actor.track_id
    with pytest.raises(SimError, match="ray_times_ns"):
        world.raycast(origin[None], direction, t0, ray_times_ns=np.array([t0, t1]))


def test_long_drive_keeps_scenery_and_traffic_around_the_ego() -> None:
    world = build_world(replace(make_scenario("highway", seed=9), duration_ns=120 * SECOND))
    t = 110 * SECOND
    ego = world.ego(t).pose
    assert len(world.actors(t, within_m=150.0)) > 5
    # A horizontal fan at knee height still finds the median barrier and guard rails.
    angles = np.linspace(-math.pi, math.pi, 721)
    fan = np.cos(angles)[:, None] * ego[:3, 0] + np.sin(angles)[:, None] * ego[:3, 1]
    hits = world.raycast(np.tile(ego[:3, 3] + [0.0, 0.0, 0.5], (angles.size, 1)), fan, t)
    names = {world.object_class(int(i)) for i in hits.object_id}
    assert "barrier" in names
