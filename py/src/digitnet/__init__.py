"""digitnet: a neural network written from scratch in numpy that learns handwritten digits.

The same package runs in CPython (CLI, tests, build) and in the browser through Pyodide.
"""
from .model import ModelFileError, Sequential, cnn, dumps, load, loads, mlp, save

__version__ = "0.1.0"
__all__ = ["ModelFileError", "Sequential", "cnn", "dumps", "load", "loads", "mlp", "save"]
