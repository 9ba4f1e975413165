"""The domain entry point (local + ghost atoms, as LAMMPS hands them) against the periodic model.

A periodic water box is cut into domains as MPI ranks would hold it: each domain's local atoms, and
ghosts (periodic images and other domains' atoms) within the receptive field of them
((num_layers − 1)·r_max + last_r_max; the model's last block has the shorter cutoff). Summed over
domains, local energies, ghost forces folded back onto their owners, virials and dipoles must equal
the periodic model's energy, forces, −volume × stress and dipole (float64), also through the file
written to disk; one decomposition cuts molecules across domains.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from checks import broken_water_model
from regnn_ff.data.structures import water_box
from regnn_ff.export.lammps import DomainEnergy, save_domain_model

FIELD = np.array([0.1, -0.2, 0.3])


def _images(atoms: Atoms):
    """Every atom of the 27 cells around and including the box: positions and owner index."""
    cell = atoms.cell.array
    positions, owners = [], []
    for shift in itertools.product((-1, 0, 1), repeat=3):
        positions.append(atoms.positions + np.array(shift) @ cell)
        owners.append(np.arange(len(atoms)))
    return np.concatenate(positions), np.concatenate(owners)


def _domain(atoms: Atoms, local: np.ndarray, ghost_cutoff: float, r_max: float):
    """(positions, species, edge_index, owners) of a domain: ``local`` atom indices first, then
    every other image within the ghost cutoff of a local atom; a full neighbour list among all."""
    images, owners = _images(atoms)
    central = np.arange(len(atoms)) + 13 * len(atoms)  # the unshifted copy is the 14th of 27
    own = central[local]
    distance = np.linalg.norm(images[:, None, :] - images[own][None, :, :], axis=-1).min(axis=1)
    ghosts = np.setdiff1d(np.nonzero(distance <= ghost_cutoff)[0], own)
    chosen = np.concatenate([own, ghosts])
    positions = images[chosen]
    i, j = neighbor_list("ij", Atoms(atoms.symbols[owners[chosen]], positions=positions), r_max)
    species = np.array([0 if s == "H" else 1 for s in atoms.symbols[owners[chosen]]])
    return positions, species, np.stack([i, j]), owners[chosen]


def _sum_over(atoms: Atoms, entry, domains, ghost_cutoff: float, r_max: float):
    energy, virial, dipole = 0.0, np.zeros(6), np.zeros(3)
    forces = np.zeros((len(atoms), 3))
    for local in domains:
        positions, species, edges, owners = _domain(atoms, local, ghost_cutoff, r_max)
        out = entry(torch.tensor(positions), torch.tensor(species), torch.tensor(edges), len(local),
                    torch.tensor(FIELD))
        energy += float(out["energy"][0])
        np.add.at(forces, owners, out["forces"].numpy())
        virial += out["virial"].numpy()
        dipole += out["dipole"].numpy()
    return energy, forces, virial, dipole


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = broken_water_model()
    atoms = water_box(24, seed=1)
    reference = model.compute(atoms, field=FIELD, properties=["energy", "forces", "stress", "dipole"])
    path = save_domain_model(model, tmp_path_factory.mktemp("domain") / "model-domain.pt")
    return model, atoms, reference, path


def _split(atoms: Atoms, parts: int, axis: int = 0):
    """Local atoms of ``parts`` slabs along ``axis``, one boundary between the first molecule's O and H."""
    fractional = atoms.get_scaled_positions(wrap=True)[:, axis]
    boundary = 0.5 * (fractional[0] + fractional[1])
    slab = np.minimum((((fractional - boundary) % 1.0) * parts).astype(int), parts - 1)
    return [np.nonzero(slab == k)[0] for k in range(parts)]


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_domains_add_up_to_the_periodic_model(setup, parts):
    model, atoms, reference, path = setup
    entry = torch.jit.load(str(path))  # the file as the pair style loads it
    domains = _split(atoms, parts)
    if parts > 1:  # some molecule has its atoms on different ranks
        molecule_of = np.arange(len(atoms)) // 3
        assert any(len({int(np.nonzero([a in d for d in domains])[0][0]) for a in np.nonzero(molecule_of == m)[0]}) > 1
                   for m in range(len(atoms) // 3))
    energy, forces, virial, dipole = _sum_over(atoms, entry, domains, model.config.receptive_field,
                                               model.config.r_max)
    assert energy == pytest.approx(float(reference["energy"]), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(forces, reference["forces"], rtol=1e-7, atol=1e-9)
    stress = reference["stress"]  # ASE Voigt: xx, yy, zz, yz, xz, xy
    expected = -atoms.get_volume() * np.array([stress[0], stress[1], stress[2], stress[5], stress[4], stress[3]])
    np.testing.assert_allclose(virial, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dipole, reference["dipole"], rtol=1e-7, atol=1e-9)


def test_a_ghost_cutoff_of_one_layer_is_not_enough(setup):
    # The check above can fail: with ghosts only r_max deep, the second block sees ghosts whose own
    # neighbourhoods are cut off, and the local energies change.
    model, atoms, reference, _ = setup
    entry = DomainEnergy(model)
    energy, *_ = _sum_over(atoms, entry, _split(atoms, 2), model.config.r_max, model.config.r_max)
    assert abs(energy - float(reference["energy"])) > 1e-6


def test_the_file_names_its_entry_and_ghost_cutoff(setup):
    import json

    model, _, _, path = setup
    extra = {"regnn_ff.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["regnn_ff.json"])
    assert meta["entry"] == "domain" and meta["ghost_cutoff"] == pytest.approx(5.5)
    assert meta["species"] == ["H", "O"] and meta["field_irreps"] == "1x1o"


def test_regnn_export_domain_writes_the_entry_point(setup, tmp_path):
    from regnn_ff.cli import main
    from regnn_ff.train.checkpoint import save_checkpoint

    model, atoms, reference, _ = setup
    checkpoint = tmp_path / "model.ckpt"
    save_checkpoint({"model_config": model.config.to_dict(), "model_state": model.state_dict(), "dtype": "float64"},
                    checkpoint)
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "domain.pt"), "--domain"]) == 0
    entry = torch.jit.load(str(tmp_path / "domain.pt"))
    energy, *_ = _sum_over(atoms, entry, _split(atoms, 2), 6.0, 3.0)
    assert energy == pytest.approx(float(reference["energy"]), rel=1e-9)


def test_float32_domains_agree_with_the_float32_periodic_model(setup):
    model, atoms, _, _ = setup
    single = broken_water_model().float()
    reference = single.compute(atoms, field=FIELD, properties=["energy", "forces"])
    entry = torch.jit.script(DomainEnergy(single))

    def float32_entry(positions, species, edges, nlocal, field):
        return entry(positions.float(), species, edges, nlocal, field.float())

    energy, forces, *_ = _sum_over(atoms, float32_entry, _split(atoms, 2), 6.0, 3.0)
    assert energy == pytest.approx(float(reference["energy"]), rel=1e-5)
    np.testing.assert_allclose(forces, reference["forces"], rtol=1e-4, atol=1e-5)
