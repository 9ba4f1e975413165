"""The few unit constants regnn-ff needs, in one place.

The core works in Å, eV, V/Å and T; adapters convert at their boundary only.
"""

from ase import units as _ase_units

#: kJ/mol per eV
KJ_PER_MOL_PER_EV = 1.0 / (_ase_units.kJ / _ase_units.mol)
#: Å per nm
ANGSTROM_PER_NM = 10.0
#: V/Å per atomic unit of electric field (E_h / (e a_0))
V_PER_ANGSTROM_PER_AU = _ase_units.Hartree / _ase_units.Bohr
