"""Reading θ: block norms, polar/axial directions, the point group it preserves, pictures."""

from .report import analyze, write_report
from .symmetry import classify, point_group

__all__ = ["analyze", "classify", "point_group", "write_report"]
