"""Example configs cannot rot: every YAML under examples/ loads as a training config."""

from pathlib import Path

import pytest

from regnn_ff.train import TrainConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_config_loads(path):
    config = TrainConfig.from_yaml(path)
    assert Path(config.data.train).is_absolute()
    config.model_config(["H", "O"])
