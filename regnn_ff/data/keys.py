"""Names of the tensors in a graph dictionary, with their shapes and units.

Every module reads and writes these keys; keeping them here means a typo is an ``AttributeError``
at import time instead of a silent ``KeyError`` deep in a forward pass.

N atoms, E directed edges, B structures, F = dimension of the model's field irreps.
"""

POSITIONS = "positions"  # [N, 3] float, Å
SPECIES = "species"  # [N] int64, index into the model's species list
BATCH = "batch"  # [N] int64, index of the structure each atom belongs to
NUM_ATOMS = "num_atoms"  # [B] int64
CELL = "cell"  # [B, 3, 3] float, Å, lattice vectors as rows (ASE convention); zeros if not periodic
PBC = "pbc"  # [B, 3] bool
# [2, E] int64: row 0 = centre atom i (receives), row 1 = neighbour j (sends). A full list (every
# pair both ways); built here it is also mirrored: the second half is the first half reversed.
EDGE_INDEX = "edge_index"
EDGE_SHIFT = "edge_shift"  # [E, 3] float, integer cell shifts: r_ij = r_j - r_i + shift @ cell
FIELD = "field"  # [B, F] float, applied field in the model's field irreps (E in V/Å, B in T)

# Outputs
ATOMIC_ENERGY = "atomic_energy"  # [N] float, eV
ENERGY = "energy"  # [B] float, eV
FORCES = "forces"  # [N, 3] float, eV/Å, -dE/dR
STRESS = "stress"  # [B, 6] float, eV/Å^3, (1/V) dE/d(strain), ASE Voigt order xx yy zz yz xz xy
DIPOLE = "dipole"  # [B, 3] float, e·Å, -dE/d(E field)

PROPERTIES = (ENERGY, FORCES, STRESS, DIPOLE)
