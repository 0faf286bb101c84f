"""Built-in backends, one module each, found by camapp/inference/backend.py with pkgutil: each
registers itself on import, with its own settings model."""
