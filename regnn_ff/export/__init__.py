"""TorchScript export of regnn-ff models, with metadata stored inside the file, and the one loader."""

from .load import LoadedModel, load_model
from .torchscript import METADATA_FILE, compile_model, load_scripted, save_scripted

__all__ = ["METADATA_FILE", "LoadedModel", "compile_model", "load_model", "load_scripted", "save_scripted"]
