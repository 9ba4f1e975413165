"""One charged particle in crossed fields: θ finds E and B from (velocity, acceleration) samples.

    python examples/paper/charged_particle.py [--epochs 150]

a = E + v × B with q/m = 1, E = (1, 0, 0), B = (0, 1, 0), integrated by semi-implicit Euler
(dt = 0.1). The model sees one node per sample, input [1, v] (0e + 1o), and predicts a (1o): no
edges, so θ acts per node only. Gated relaxed layers with θ up to l = 1 (0e + 0o + 1o + 1e); Adam,
group-norm penalty 1e-4 on θ's non-scalar blocks, weights updated on every mini-batch, and a real
copy of the best state kept. The last layer's 1o block should lie along the E axis and its 1e
block along the B axis (a learned θ's sign is fixed only up to the weights that consume it), and θ
should keep exactly the mirror through the plane of E normal to B (Cs). float64, seed 0.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from regnn_ff.analysis import analyze
from regnn_ff.nn.relaxed_layer import RelaxedLayer

E_FIELD = np.array([1.0, 0.0, 0.0])
B_FIELD = np.array([0.0, 1.0, 0.0])


def trajectory(steps: int = 200, dt: float = 0.1, v0=(0.3, 0.4, -0.5)) -> tuple:
    """Velocities and accelerations along a semi-implicit Euler trajectory (q/m = 1)."""
    v = np.array(v0, dtype=np.float64)
    velocities, accelerations = [], []
    for _ in range(steps):
        a = E_FIELD + np.cross(v, B_FIELD)
        velocities.append(v.copy())
        accelerations.append(a)
        v = v + dt * a
    return np.array(velocities), np.array(accelerations)


class ParticleModel(torch.nn.Module):
    """A gated hidden layer, then a linear relaxed layer to 1o.

    With θ in both layers, E and B can be carried by either layer's θ (both fits are exact), so
    the hidden layer is strictly equivariant by default and the last layer's θ must hold them.
    """

    def __init__(self, channels: int = 8, hidden_l_relaxed=None):
        super().__init__()
        self.hidden = RelaxedLayer("0e+1o", "0e+0o+1o+1e", 1, channels, l_relaxed=hidden_l_relaxed, gate=True)
        self.last = RelaxedLayer("0e+0o+1o+1e", "1o", channels, 1, l_relaxed=1)

    def forward(self, x):
        return self.last(self.hidden(x))[:, 0, :]

    def layers(self):
        return [self.hidden, self.last]


def angle(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))))


def run(epochs: int = 150, batch: int = 16, lr: float = 0.01, penalty: float = 1e-4, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    velocities, accelerations = trajectory()
    x = torch.zeros(len(velocities), 1, 4, dtype=torch.float64)
    x[:, 0, 0] = 1.0
    x[:, 0, 1:] = torch.tensor(velocities)
    y = torch.tensor(accelerations)
    model = ParticleModel().double()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_state = float("inf"), None
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(batch):
            optimizer.zero_grad()
            loss = (model(x[idx]) - y[idx]).pow(2).sum(dim=1).mean()
            loss = loss + penalty * sum(layer.source.penalty() for layer in model.layers() if layer.source.learnable)
            loss.backward()
            optimizer.step()  # every mini-batch
        with torch.no_grad():
            full = (model(x) - y).pow(2).sum(dim=1).mean().item()
        if full < best_loss:
            best_loss, best_state = full, copy.deepcopy(model.state_dict())  # a real copy of the best
    model.load_state_dict(best_state)
    thetas = [layer.source.theta.detach().numpy() for layer in model.layers() if layer.source.learnable]
    irreps = str(model.last.source.irreps_theta)  # 0e + 0o + 1o + 1e: 1o at 2:5, 1e at 5:8
    last = thetas[-1]
    return {
        "loss": best_loss,
        # Axes, not signs: a learned θ's sign is fixed only up to the weights that consume it.
        "angle_1o_E": min(angle(last[2:5], E_FIELD), angle(last[2:5], -E_FIELD)),
        "angle_1e_B": min(angle(last[5:8], B_FIELD), angle(last[5:8], -B_FIELD)),
        "sign_1o": int(np.sign(np.dot(last[2:5], E_FIELD))),
        "sign_1e": int(np.sign(np.dot(last[5:8], B_FIELD))),
        "thetas": thetas,
        "report": analyze((irreps, thetas)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    result = run(args.epochs)
    print(f"best mean squared error {result['loss']:.3g}")
    signs = {1: "+", -1: "−"}
    print(f"last layer: 1o block {result['angle_1o_E']:.4f}° from the E axis (along {signs[result['sign_1o']]}E), "
          f"1e block {result['angle_1e_B']:.4f}° from the B axis (along {signs[result['sign_1e']]}B)")
    print(f"point group of θ: {result['report']['point_group']}")


if __name__ == "__main__":
    main()
