"""digitnet: a neural network written from scratch in numpy that learns handwritten digits.

The same package runs in CPython (CLI, tests, build) and in the browser through Pyodide.
The names below are imported on first use, so ``python -m digitnet`` can set up the
environment before numpy loads (see ``__main__``).
"""
__version__ = "0.1.0"
__all__ = ["ModelFileError", "Sequential", "cnn", "dumps", "load", "loads", "mlp", "save"]


def __getattr__(name: str):
    if name in __all__:
        from . import model
        return getattr(model, name)
    raise AttributeError(f"module 'digitnet' has no attribute {name!r}")
