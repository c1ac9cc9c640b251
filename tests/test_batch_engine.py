"""The process pool engine: outcomes as tasks end, workers' progress as they run, and workers
stopped on the way out of an error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bagscope.batch.local import LocalEngine, WorkerDiedError
from bagscope.batch.tasks import Job, run_job
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = make_scenario(
        "urban", seed=2, duration_ns=3_000_000_000, beams=16, camera_size=(160, 90)
    )
    root = tmp_path_factory.mktemp("engine")
    return simulate(root / "drive.mcap", scenario=scenario, workers=0).log_path


def test_workers_report_their_frames_as_they_run(log: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    job = Job(log=str(log), run_dir=str(tmp_path / "run"), pipeline=None, figures=False)
    with LocalEngine(1, on_progress=lambda key, frames: seen.append((key, frames))) as engine:
        ticket = engine.submit(run_job, job)
        outcomes = engine.next_done()
    assert [o.ticket for o in outcomes] == [ticket]
    result = outcomes[0].value
    assert result["frames"] == 30  # 3 s of a 10 Hz lidar, each sweep with its image
    assert {key for key, _ in seen} == {str(log)}
    counts = [frames for _, frames in seen]
    assert counts == sorted(counts)
    assert counts[-1] == 30  # the last report is the whole run


def test_ctrl_c_mid_run_stops_the_workers_and_writes_nothing(log: Path, tmp_path: Path) -> None:
    job = Job(log=str(log), run_dir=str(tmp_path / "run"), pipeline=None, figures=False)
    workers = []

    def interrupt(_key: str, _frames: int) -> None:  # Ctrl-C once the worker is reading
        workers.extend((getattr(engine._pool, "_processes", None) or {}).values())
        raise KeyboardInterrupt

    engine = LocalEngine(1, on_progress=interrupt)

    def run() -> None:
        with engine:
            engine.submit(run_job, job)
            engine.next_done()

    with pytest.raises(KeyboardInterrupt):
        run()
    assert workers
    assert not any(w.is_alive() for w in workers)
    assert not list(tmp_path.iterdir())  # neither the run directory nor a temporary one


def _echo(value: int) -> int:
    return value


def _die(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
    return -1


def test_a_task_that_kills_its_worker_fails_alone() -> None:
    """The other tasks in flight when the pool broke are run again and succeed."""
    with LocalEngine(2) as engine:
        tickets = {engine.submit(_echo, i): i for i in range(3)}
        killer = engine.submit(_die, 0)
        tickets.update({engine.submit(_echo, i): i for i in range(3, 6)})
        outcomes = {}
        while len(outcomes) < 7:
            outcomes.update({o.ticket: o for o in engine.next_done()})
    assert {t: outcomes[t].value for t in tickets} == tickets
    assert all(outcomes[t].error is None for t in tickets)
    error = outcomes[killer].error
    assert isinstance(error, WorkerDiedError)
    assert str(error) == "its worker died twice running it (killed, or out of memory)"
