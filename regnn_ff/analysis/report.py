"""``analyze``: what a relaxed model learned about the symmetry of its data, as a JSON-ready dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from e3nn import o3

from ..atomic import atomic_path
from ..nn.potential import RelaxedPotential
from .blocks import axis_angle_degrees, block_norms, quadrupole_axes, vector_direction
from .symmetry import point_group

Source = Union[RelaxedPotential, str, Path, Tuple[str, Sequence]]


def relaxed_weights_of(source: Source) -> Tuple[Optional[str], List[np.ndarray], Optional[str]]:
    """(θ irreps, θ per layer, field irreps) from a model, a ``.ckpt``, an exported ``.pt``, or
    a pair ``(irreps, [θ, ...])``."""
    if isinstance(source, tuple):
        irreps, thetas = source
        return str(o3.Irreps(irreps)), [np.asarray(t, dtype=np.float64) for t in thetas], None
    if isinstance(source, RelaxedPotential):
        return source.relaxed_irreps(), [t.double().numpy() for t in source.relaxed_weights()], source.config.field_irreps
    from ..export.load import load_model

    loaded = load_model(source)
    if loaded.eager is not None:  # a checkpoint
        return relaxed_weights_of(loaded.eager)
    module, meta = loaded.module, loaded.metadata
    if meta.get("relaxed_irreps") is None:
        return None, [], meta.get("field_irreps")
    state = module.state_dict()
    # Files exported by regnn-ff 0.1 keep the blocks at "layers.k"; later ones under the representation.
    prefix = "representation." if "representation.layers.0.source.theta" in state else ""
    thetas = [state[f"{prefix}layers.{k}.source.theta"].double().numpy() for k in range(meta["config"]["num_layers"])]
    return meta["relaxed_irreps"], thetas, meta.get("field_irreps")


def _significant(irreps: o3.Irreps, theta: np.ndarray, norms: Dict[str, float], threshold: float) -> np.ndarray:
    """θ with every block below ``threshold`` (relative to the 0e part) set to zero."""
    out = np.array(theta, dtype=np.float64)
    for (_, ir), sl in zip(irreps, irreps.slices()):
        if ir != o3.Irrep("0e") and norms[str(ir)] < threshold:
            out[sl] = 0.0
    return out


def _broken_to(group: str) -> str:
    return "the data keep all of O(3)" if group == "O(3)" else f"the data break O(3) down to {group}"


def _selection(source: Source, data: Optional[str]) -> Optional[Dict[str, Any]]:
    """The group chosen by validation loss (:mod:`.selection`) for a checkpoint or a model with
    ``data``; None where there is no eager model (an exported file) or no θ."""
    from .selection import format_table, select_group, validation_frames
    from .symmetrize import choose_group

    if isinstance(source, RelaxedPotential):
        if source.config.l_relaxed is None:
            return None
        if data is None:
            selection = select_group(source)
        else:
            state = {"train_config": {}}
            selection = select_group(source, *validation_frames(state, source, data))
    elif isinstance(source, (str, Path)) and str(source).endswith(".ckpt"):
        from ..train.checkpoint import load_checkpoint, model_from_state

        state = load_checkpoint(source)
        model = model_from_state(state, source)
        if model.config.l_relaxed is None:
            return None
        selection = choose_group(state, model, "auto", data)
    else:
        return None
    out = selection.to_dict()
    out["text"] = format_table(selection)
    return out


def analyze(source: Source, threshold: float = 0.02, tolerance: float = 0.01, data: Optional[str] = None,
            select: bool = True) -> Dict[str, Any]:
    """The symmetry report of a relaxed model.

    Args:
        source: a RelaxedPotential, a checkpoint or exported model path, or ``(irreps, [θ per layer])``.
        threshold: a block counts as significant when its norm is at least this fraction of the
            0e part's; smaller blocks are treated as zero when finding the point group.
        tolerance: an operation is a symmetry when it changes the (significant) θ of every layer by
            less than this fraction of θ's largest entry.

        data: labelled frames for the group selection (default: a checkpoint's own validation split).
        select: choose the group the data broke by validation loss (``selection``, ``group``).

    Returns a dict with ``group`` and ``selection`` (the most symmetric group whose projected θ
    predicts the validation frames as well as θ itself, and the table of every candidate; see
    :mod:`regnn_ff.analysis.selection`), ``point_group`` (the exact stabilizer of θ's significant
    blocks, Schoenflies, ``O(3)`` for a scalar-only θ, ``SO(3)`` when only a pseudoscalar breaks
    it), ``layers`` (each: ``block_norms``, ``significant``,
    ``polar_vector``, ``axial_vector``, ``quadrupole``), the angles between layers' axes, the
    symmetry elements found, and a one-line ``summary``.
    """
    irreps_str, thetas, field_irreps = relaxed_weights_of(source)
    report: Dict[str, Any] = {"relaxed_irreps": irreps_str, "field_irreps": field_irreps,
                              "threshold": threshold, "tolerance": tolerance}
    if irreps_str is None:
        report.update(point_group="O(3)", group="O(3)", selection=None, layers=[], elements=None,
                      summary="strictly equivariant model (no relaxed weights): it preserves all of O(3)")
        return report
    irreps = o3.Irreps(irreps_str)
    layers, cleaned = [], []
    for theta in thetas:
        norms = block_norms(irreps, theta)
        kept = _significant(irreps, theta, norms, threshold)
        cleaned.append(kept)
        layers.append({
            "block_norms": norms,
            "significant": [name for name, value in norms.items() if name != "0e" and value >= threshold],
            "polar_vector": vector_direction(irreps, kept, "1o"),
            "axial_vector": vector_direction(irreps, kept, "1e"),
            "quadrupole": quadrupole_axes(irreps, kept, "2e"),
            "theta": [float(x) for x in theta],
        })
    group, elements = point_group(irreps, cleaned, tolerance)
    report["point_group"] = group
    report["layers"] = layers
    report["elements"] = {
        "inversion": elements.inversion,
        "rotation_axes": [{"axis": [float(x) for x in a], "order": "inf" if n == np.inf else int(n)} for a, n in elements.rotations],
        "mirror_normals": [[float(x) for x in m] for m in elements.mirrors],
    }
    for kind in ("polar_vector", "axial_vector"):
        report[f"{kind}_angles_between_layers"] = [
            axis_angle_degrees(layers[k][kind], layers[k + 1][kind]) for k in range(len(layers) - 1)
        ]
    broken = sorted({name for layer in layers for name in layer["significant"]})
    if field_irreps:
        beyond = (f"beyond the given field ({field_irreps}), θ breaks O(3) down to {group}"
                  if broken else f"θ learned nothing beyond the given field ({field_irreps})")
        report["beyond_field"] = beyond
    report["summary"] = (f"θ preserves {group}" + (f"; significant blocks: {', '.join(broken)}" if broken else "; θ is scalar"))
    selection = _selection(source, data) if select else None
    report["selection"] = selection
    report["group"] = selection["group"] if selection else group
    if selection:
        report["summary"] = f"{_broken_to(selection['group'])} ({selection['criterion']}); " + report["summary"]
    return report


def write_report(source: Source, output_dir: Union[str, Path], threshold: float = 0.02, tolerance: float = 0.01,
                 data: Optional[str] = None, select: bool = True) -> Dict[str, Any]:
    """:func:`analyze`, then ``report.json`` and ``theta_layers.png`` in ``output_dir``."""
    from .plots import plot_layers

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = analyze(source, threshold, tolerance, data, select)
    if report["relaxed_irreps"] is not None:
        thetas = [np.array(layer["theta"]) for layer in report["layers"]]
        report["plot"] = str(plot_layers(o3.Irreps(report["relaxed_irreps"]), thetas, out / "theta_layers.png"))
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return report
