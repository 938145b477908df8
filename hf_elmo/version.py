"""The package's version, in a leaf module (it imports nothing): the model cards and the ONNX exporter record it
without importing the package root (whose ``__getattr__`` imports hf_elmo.onnx). pyproject.toml holds the same
string (tests/test_imports.py checks it)."""

__version__ = "0.1.0"
