"""The simulator's one error type."""

from __future__ import annotations

from bagscope.errors import BagscopeError


class SimError(BagscopeError):
    """The user asked the simulator for something it cannot do (unknown scenario, bad size)."""
