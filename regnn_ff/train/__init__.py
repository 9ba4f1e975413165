"""Training: config, batches, loss, metrics, checkpoints, the loop."""

from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import TrainConfig
from .trainer import load_run_config, train

__all__ = ["TrainConfig", "load_checkpoint", "load_run_config", "model_from_checkpoint", "save_checkpoint", "train"]
