"""TorchScript export of regnn-ff models, with metadata stored inside the file."""

from .torchscript import METADATA_FILE, compile_model, load_scripted, save_scripted

__all__ = ["METADATA_FILE", "compile_model", "load_scripted", "save_scripted"]
