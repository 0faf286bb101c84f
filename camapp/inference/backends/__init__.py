"""Built-in backends; each module registers itself (see camapp/inference/backend.py)."""

from camapp.inference.backends import edgetpu, hailo, imx500, litert, onnx

__all__ = ["edgetpu", "hailo", "imx500", "litert", "onnx"]
