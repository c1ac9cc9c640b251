"""The simulator's errors: what the user asked for that it cannot do."""

from __future__ import annotations

from pathlib import Path

from bagscope.errors import BagscopeError

__all__ = ["OutputExistsError", "SimError"]


class SimError(BagscopeError):
    """The user asked the simulator for something it cannot do (unknown scenario, bad size).

    ``parameter`` names the :func:`~bagscope.sim.simulate.simulate` argument at fault, so a
    front end can name its own spelling of it (``--camera-size`` for ``camera_size``) without
    parsing the message.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class OutputExistsError(SimError):
    """The log (or something in its place) exists and replacing it was not allowed.

    A separate type because the remedy is spelled differently by each front end:
    ``overwrite=True`` in Python, ``--overwrite`` on the command line.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} exists already; pass overwrite=True to replace it", parameter="overwrite"
        )
        self.path = Path(path)
