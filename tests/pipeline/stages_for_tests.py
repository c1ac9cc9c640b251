"""Stages named by ``module:Class`` in the CLI tests' pipeline files (importable as
``tests.pipeline.stages_for_tests``): small, exact, and each doing one thing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bagscope.pipeline.stage import Check, Event, StageResult

if TYPE_CHECKING:
    from bagscope.replay.frame import Frame


class PointCount:
    """Per frame, the number of points of every cloud; a warning for clouds under ``minimum``."""

    def __init__(self, *, minimum: int = 0, name: str = "points") -> None:
        self.name = name
        self.minimum = minimum
        self.rows: list[tuple[int, str, int]] = []

    def process(self, frame: Frame) -> int:
        total = 0
        for topic, cloud in frame.clouds.items():
            n = len(cloud.xyz)
            self.rows.append((frame.t_ns, topic, n))
            total += n
        return total

    def finish(self) -> StageResult:
        result = StageResult()
        small = [(t, topic, n) for t, topic, n in self.rows if n < self.minimum]
        for t, topic, n in self.rows:
            result.metrics.add("points", n, t_ns=t, topic=topic)
        for t, topic, n in small:
            result.events.append(
                Event(
                    t_ns=t,
                    end_ns=t,
                    topic=topic,
                    kind="few_points",
                    severity="warning",
                    message=f"{topic}: {n} points < {self.minimum}",
                    evidence={"points": n},
                )
            )
        result.checks.append(
            Check(
                name="points",
                topic=None,
                status="warn" if small else "pass",
                value=f"{len(small)} small clouds",
                threshold=f">= {self.minimum} points",
            )
        )
        return result


class Explodes:
    """Raises on every frame after the third."""

    name = "explodes"

    def __init__(self) -> None:
        self.n = 0

    def process(self, frame: Frame) -> None:
        self.n += 1
        if self.n > 3:
            msg = f"frame {frame.index} is too much"
            raise RuntimeError(msg)

    def finish(self) -> StageResult:
        return StageResult()


class Interrupts:
    """Presses Ctrl-C on the fifth frame."""

    name = "interrupts"

    def process(self, frame: Frame) -> None:
        if frame.index == 4:
            raise KeyboardInterrupt

    def finish(self) -> StageResult:
        return StageResult()
