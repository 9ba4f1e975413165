"""ModelConfig round trips and one-line errors for bad input, raised before any computation."""

import numpy as np
import pytest

from checks import molecule_cluster, small_model, triclinic_crystal
from regnn_ff import ModelConfig, RelaxedPotential


def test_config_round_trips_through_dict_and_yaml(tmp_path):
    config = ModelConfig(species=["H", "O"], l_relaxed=2, relaxed_mul=2, field_irreps="1o", num_layers=3)
    assert config.field_irreps == "1x1o"  # normalised
    assert ModelConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "model.yaml"
    config.to_yaml(path)
    assert ModelConfig.from_yaml(path) == config
    model = RelaxedPotential(config.to_dict())
    assert model.config == config


def test_unknown_config_key_is_named_with_its_file(tmp_path):
    with pytest.raises(ValueError, match=r"model config: unknown key 'chanels' \(did you mean 'channels'\?\)"):
        ModelConfig.from_dict({"species": ["H"], "chanels": 8})
    path = tmp_path / "bad.yaml"
    path.write_text("species: [H, O]\nl_relaxd: 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key 'l_relaxd' \(did you mean 'l_relaxed'\?\)"):
        ModelConfig.from_yaml(path)
    path.write_text("species: [H, O\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        ModelConfig.from_yaml(path)
    with pytest.raises(ValueError, match="missing required key 'species'"):
        ModelConfig.from_dict({"channels": 8})
    with pytest.raises(ValueError, match="unknown key 'foo'"):
        RelaxedPotential({"species": ["H"], "foo": 1})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"species": ["H", "Xx"]}, "'species' contains 'Xx', which is not a chemical symbol"),
        ({"species": ["H", "H"]}, "'species' has duplicates"),
        ({"species": ["H"], "r_max": -1.0}, "'r_max' must be > 0"),
        ({"species": ["H"], "channels": 0}, "'channels' must be an integer >= 1"),
        ({"species": ["H"], "l_relaxed": -1}, "'l_relaxed' must be null or an integer >= 0"),
        ({"species": ["H"], "relaxed_entry": "edges"}, "'relaxed_entry' must be one of"),
        ({"species": ["H"], "field_irreps": "1x1q"}, "'field_irreps' is not an irreps string"),
        ({"species": ["H"], "correlation": 4}, "'correlation' must be 1, 2 or 3"),
        ({"species": ["H"], "l_max": 1, "hidden_l_max": 2}, r"'hidden_l_max' must be an integer from 0 to l_max \(1\)"),
        ({"species": ["H"], "last_density_l_max": 3}, r"'last_density_l_max' must be an integer from 0 to l_max \(2\)"),
        ({"species": ["H"], "correlation": 1, "last_density_l_max": 2}, "'last_density_l_max' > 0 needs correlation > 1"),
    ],
)
def test_invalid_config_values_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(options)


def test_bad_inputs_to_compute_give_one_line_errors():
    model = small_model(field_irreps="1x1o")
    atoms = molecule_cluster()
    cases = [
        (dict(field=[0.1, 0.2]), r"field must have shape \(3,\) or \(1, 3\) for field irreps 1x1o; got \(2,\)"),
        (dict(field=[[0.1, 0.2, 0.3]] * 2), r"got \(2, 3\)"),
        (dict(field=[np.nan, 0, 0]), "field has non-finite values"),
        (dict(properties=["energy", "charges"]), "unknown property 'charges'"),
        (dict(properties=["stress"]), "stress needs a periodic cell with non-zero volume; structure 0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            model.compute(atoms, **kwargs)
        assert "\n" not in str(info.value)
    strict = small_model()
    with pytest.raises(ValueError, match="this model has no field input"):
        strict.compute(atoms, field=[0.0, 0.0, 0.1])
    with pytest.raises(ValueError, match="dipole needs an E-field input"):
        strict.compute(atoms, properties=["dipole"])
    b_only = small_model(field_irreps="1x1e")
    with pytest.raises(ValueError, match="dipole needs an E-field input"):
        b_only.compute(triclinic_crystal(), field=[0, 0, 1.0], properties=["dipole"])
    unknown = molecule_cluster()
    unknown[0].symbol = "Fe"
    with pytest.raises(ValueError, match="element 'Fe' is not one of the model's species"):
        model.compute(unknown)


def test_readout_statistics_are_checked_and_set():
    model = small_model()
    model.readout.set_statistics([-13.6, -1030.0, -2040.0], 0.8)
    assert model.readout.shift.tolist() == [-13.6, -1030.0, -2040.0] and set(model.readout.scale.tolist()) == {0.8}
    with pytest.raises(ValueError, match="expected 3 reference energies, got 2"):
        model.readout.set_statistics([0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="scale must be > 0 eV, got 0.0"):
        model.readout.set_statistics([0.0, 0.0, 0.0], 0.0)
