"""TorchScript: a compiled model saved to disk and reloaded gives the eager model's outputs."""

import numpy as np
import pytest
import torch

from checks import small_model, triclinic_crystal
from regnn_ff.data.graph import atoms_to_graph
from regnn_ff.export import compile_model, load_scripted, save_scripted

PROPERTIES = ["energy", "forces", "stress", "dipole"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", [{}, {"l_relaxed": 2, "field_irreps": "1x1o"}, {"l_relaxed": 1, "relaxed_entry": "node", "field_irreps": "1x1o+1x1e", "field_time_reversal": True}])
def test_saved_and_reloaded_model_is_bit_identical_to_eager(tmp_path, dtype, config):
    model = small_model(dtype=dtype, **config)
    if model.config.l_relaxed is not None:
        generator = torch.Generator().manual_seed(1)
        model.set_relaxed_weights([w + 0.2 * torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in model.relaxed_weights()])
    field = None
    if model.field_dim:
        field = np.linspace(-0.3, 0.3, model.field_dim)[None]
    graph = atoms_to_graph(triclinic_crystal(), model.species_names, model.r_max, field, dtype=dtype)
    properties = PROPERTIES if model.dipole_start >= 0 else PROPERTIES[:3]
    eager = model(graph, properties)

    path = save_scripted(model, tmp_path / "model.pt")
    reloaded, meta = load_scripted(path)
    assert meta["species"] == model.species_names and meta["dtype"] == str(dtype).split(".")[1]
    assert meta["config"] == model.config.to_dict()
    # With the JIT's graph optimiser off, TorchScript runs exactly the eager kernels.
    with torch.jit.optimized_execution(False):
        for _ in range(2):
            out = reloaded(graph, properties)
            for p in properties:
                assert torch.equal(out[p], eager[p]), p
    # The default (profiling) executor may re-associate sums in its autodiff graphs: equal to rounding.
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for _ in range(3):
        out = reloaded(graph, properties)
    for p in properties:
        assert torch.allclose(out[p], eager[p], rtol=tolerance, atol=tolerance), p


def test_compiled_model_in_memory_matches(tmp_path):
    model = small_model(l_relaxed=2)
    graph = atoms_to_graph(triclinic_crystal(), model.species_names, model.r_max, dtype=torch.float64)
    scripted = compile_model(model)
    with torch.jit.optimized_execution(False):
        assert torch.equal(scripted(graph, ["energy"])["energy"], model(graph, ["energy"])["energy"])


def test_loading_a_file_that_is_not_a_model_names_it(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="notes.pt: not a TorchScript model file"):
        load_scripted(bad)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ValueError, match="plain.pt: a TorchScript file, but not a regnn-ff model"):
        load_scripted(plain)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_scripted(tmp_path / "missing.pt")


def test_a_model_file_from_another_format_version_is_refused(tmp_path):
    import json

    from regnn_ff.export.torchscript import METADATA_FILE

    model = small_model()
    path = save_scripted(model, tmp_path / "model.pt")
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    meta["format_version"] = 99
    torch.jit.save(module, str(tmp_path / "future.pt"), _extra_files={METADATA_FILE: json.dumps(meta)})
    with pytest.raises(ValueError, match=r"future.pt: regnn-ff model format 99 is not supported by this version \(expects 1\)"):
        load_scripted(tmp_path / "future.pt")
