"""The many-body product on its own: exact O(3) equivariance (float32 and float64, proper and
improper elements), the polynomial degree it claims, species dependence and its construction checks."""

import numpy as np
import pytest
import torch
from e3nn import o3

from checks import module_equivariance_error, random_orthogonal
from regnn_ff.nn.product import SymmetricProduct

HIDDEN = o3.Irreps("0e+1o+2e")


def product(correlation=3, irreps_in=HIDDEN, irreps_out=HIDDEN, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return SymmetricProduct(irreps_in, irreps_out, channels=4, num_species=3, correlation=correlation).to(dtype)


@pytest.mark.parametrize("dtype,bound", [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("correlation", [1, 2, 3])
@pytest.mark.parametrize("improper", [False, True], ids=["rotation", "improper"])
def test_product_is_equivariant(dtype, bound, correlation, improper):
    module = product(correlation, dtype=dtype)
    torch.manual_seed(1)
    x = torch.randn(6, 4, HIDDEN.dim, dtype=dtype)
    species = torch.tensor([0, 1, 2, 0, 1, 2])
    for seed in range(3):
        err = module_equivariance_error(module, x, random_orthogonal(seed, improper), species)
        assert err < bound, f"correlation {correlation}: relative equivariance error {err:.1e}"


@pytest.mark.parametrize("irreps_in,irreps_out", [("0e+1o+2e", "0e"), ("0e", "0e"), ("0e+1o", "0e+1o+1e+2o")])
def test_other_irreps_are_equivariant(irreps_in, irreps_out):
    module = product(3, o3.Irreps(irreps_in), o3.Irreps(irreps_out))
    x = torch.randn(5, 4, o3.Irreps(irreps_in).dim, dtype=torch.float64)
    species = torch.tensor([0, 1, 2, 1, 0])
    for seed in range(2):
        assert module_equivariance_error(module, x, random_orthogonal(seed, True), species) < 1e-12


@pytest.mark.parametrize("correlation", [1, 2, 3])
def test_output_is_a_polynomial_of_the_claimed_degree(correlation):
    """B(t·A) is a polynomial in t of degree `correlation` with no constant term: fitted exactly by
    that degree and not by one less."""
    module = product(correlation)
    x = torch.randn(3, 4, HIDDEN.dim, dtype=torch.float64)
    species = torch.tensor([0, 1, 2])
    ts = np.linspace(-1.5, 1.5, 7)
    values = np.stack([module(t * x, species).detach().numpy().ravel() for t in ts])

    def residual(degree):
        basis = np.stack([ts**k for k in range(1, degree + 1)], axis=1)
        coef, *_ = np.linalg.lstsq(basis, values, rcond=None)
        return np.abs(basis @ coef - values).max() / np.abs(values).max()

    assert residual(correlation) < 1e-12
    if correlation > 1:
        assert residual(correlation - 1) > 1e-3


def test_no_intermediate_coupling_vanishes_identically():
    """Couplings of an irrep with itself that are antisymmetric (a vector's cross product with itself)
    are left out; every kept intermediate is non-zero for a random density."""
    module = product(2)
    a = torch.randn(50, HIDDEN.dim, dtype=torch.float64)
    p2 = torch.matmul((a.unsqueeze(2) * a.unsqueeze(1)).reshape(50, -1), module.t2)[:, : module.dim_p2]
    assert p2.abs().amax(0).min() > 1e-3


def test_weights_depend_on_the_species_of_the_atom():
    module = product(3)
    x = torch.randn(1, 4, HIDDEN.dim, dtype=torch.float64).expand(3, -1, -1)
    out = module(x, torch.tensor([0, 1, 2]))
    assert (out[0] - out[1]).abs().max() > 1e-6 and (out[1] - out[2]).abs().max() > 1e-6


def test_construction_refuses_an_output_it_cannot_make():
    with pytest.raises(ValueError, match=r"cannot produce 1x1o"):
        SymmetricProduct(o3.Irreps("0e"), o3.Irreps("0e+1o"), 4, 1, correlation=1)
    with pytest.raises(ValueError, match=r"cannot produce 1x3o"):
        SymmetricProduct(o3.Irreps("0e+1o"), o3.Irreps("0e+3o"), 4, 1, correlation=2)
    with pytest.raises(ValueError, match=r"correlation must be 1, 2 or 3"):
        SymmetricProduct(HIDDEN, HIDDEN, 4, 1, correlation=4)


def test_scalar_output_spans_every_invariant_up_to_degree_three():
    """With the weights folded into the coupling tables no invariant may be lost: per channel, the
    O(3) invariants of A = s + v + T (0e+1o+2e) of degree <= 3 are s; s², |v|², |T|²; s³, s|v|²,
    s|T|², vᵀTv, tr T³ (9), and the outputs of one-hot weights on random densities span exactly them."""
    module = product(3, irreps_out=o3.Irreps("0e"))
    x = torch.randn(40, 4, HIDDEN.dim, dtype=torch.float64)
    species = torch.zeros(40, dtype=torch.long)
    outputs = []
    with torch.no_grad():
        for k in range(module.num_paths):
            module.weight.zero_()
            module.weight[0, 0, k] = 1.0
            outputs.append(module(x, species)[:, 0].ravel())
    assert torch.linalg.matrix_rank(torch.stack(outputs)) == 9
