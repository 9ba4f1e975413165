"""Structures to graphs, graph keys and units."""

from .graph import atoms_to_graph, neighbour_list

__all__ = ["atoms_to_graph", "neighbour_list"]
