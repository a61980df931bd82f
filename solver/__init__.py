"""The exact plaintext pack solver: the test oracle and the engine for public stags.

`PackSolver` keeps one pack's state and finds its hunt in O(log L) (DESIGN.md §8);
`greatest_satisfying_subset` computes the same answer straight from the definition.
"""

from .pack import MAX_LEVELS, MIN_LEVELS, Hunt, PackSolver
from .replay import HeightOracle
from .segment_tree import MaxSegmentTree
from .subset import greatest_satisfying_subset

__all__ = [
    "MAX_LEVELS",
    "MIN_LEVELS",
    "HeightOracle",
    "Hunt",
    "MaxSegmentTree",
    "PackSolver",
    "greatest_satisfying_subset",
]
