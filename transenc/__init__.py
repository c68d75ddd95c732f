"""transenc: unsupervised sentence-pair modelling (Trans-Encoder) and a fast pair-scoring engine.

The Python API (transenc.read_pairs, .label, .evaluate, .mine, .train, .Run) lives in transenc.api and is loaded
on first use, so that `import transenc` does not import torch.
"""
import importlib

from transenc.errors import InputError, ModelError, OutputError, TransencError  # noqa: F401  (what the API raises; no torch)

__version__ = "0.1.0"

_API = ("read_pairs", "label", "evaluate", "mine", "train", "Run", "PairSet", "DEMO_PAIRS", "DEMO_DEV")


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("transenc.api"), name)
    raise AttributeError(f"module 'transenc' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_API))  # the API too, for tab completion
