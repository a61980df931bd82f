"""Argument checks shared by the solver's public entry points."""

from __future__ import annotations

from stagpack.errors import InvalidInput


def require_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int (bool is not accepted), else raise TypeError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def require_int_in_range(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int with low <= value <= high; TypeError or InvalidInput."""
    checked = require_int(name, value)
    if not low <= checked <= high:
        raise InvalidInput(f"{name} must be within {low}..{high}, got {checked}")
    return checked
