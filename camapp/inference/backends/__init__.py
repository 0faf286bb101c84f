"""Built-in backends; each module registers itself (see camapp/inference/backend.py)."""

from camapp.inference.backends import edgetpu, litert

__all__ = ["edgetpu", "litert"]
