"""`camapp model info`: what a model file holds, read without running it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from camapp.errors import ConfigError
from camapp.inference.backends.litert import interpreter_api
from camapp.models.labels import embedded_labels, read_labels
from camapp.models.manifest import load_manifest
from camapp.models.store import labels_beside

# Edge TPU-compiled models hold their whole graph in this custom op.
_EDGETPU_OP = b"edgetpu-custom-op"


def _tensor_info(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": detail["dtype"].__name__,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def model_info(model_path: Path) -> dict[str, Any]:
    """Describe a model file without running it, so Edge TPU builds work on any host."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ConfigError(f"model file not found: {model_path}")
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read model {model_path}: {exc.strerror or exc}") from None
    interpreter_class = interpreter_api()[0]
    try:
        # Tensor details are readable before allocate_tensors(), which would fail on
        # a host without the delegate a model needs.
        interpreter = interpreter_class(model_path=str(model_path), num_threads=1)
        inputs = [_tensor_info(d) for d in interpreter.get_input_details()]
        outputs = [_tensor_info(d) for d in interpreter.get_output_details()]
    except (ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"not a valid TFLite model: {model_path} ({reason})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        labels: int | None = len(read_labels(model_path))
    except ConfigError:
        labels = None
    beside = labels_beside(model_path)
    # Embedded labels win over the file fetched beside the model (see read_labels).
    labels_file = str(beside) if beside and not embedded_labels(model_path) else None
    manifest_name = next((s.name for s in load_manifest().values() if s.sha256 == sha256), None)
    return {
        "path": str(model_path),
        "bytes": len(data),
        "sha256": sha256,
        "inputs": inputs,
        "outputs": outputs,
        "labels": labels,
        "labels_file": labels_file,  # where the labels come from when not embedded
        "manifest_name": manifest_name,
        "delegate": "edgetpu" if _EDGETPU_OP in data else None,
    }


def _format_tensor(kind: str, index: int, tensor: dict[str, Any]) -> str:
    if tensor["scale"]:
        quant = f"scale {tensor['scale']:.6g} zero_point {tensor['zero_point']}"
    else:
        quant = "not quantized"
    return (
        f"{kind} {index}:".ljust(11)
        + f"{tensor['name']} {tensor['dtype']} {tensor['shape']} {quant}"
    )


def format_model_info(info: dict[str, Any]) -> str:
    """Render model_info() for `camapp model info`."""
    if info["labels"] is None:
        labels = "none embedded (pass --labels FILE)"
    elif info.get("labels_file"):
        labels = f"{info['labels']} from {info['labels_file']} (fetched with the model)"
    else:
        labels = f"{info['labels']} embedded"
    lines = [
        f"path:      {info['path']}",
        f"manifest:  {info['manifest_name'] or 'not in manifest'}",
        f"size:      {info['bytes']} bytes ({info['bytes'] / 2**20:.1f} MiB)",
        f"sha256:    {info['sha256']}",
        f"labels:    {labels}",
    ]
    if info.get("delegate"):
        lines.append(f"delegate:  {info['delegate']} (cannot run on a plain CPU)")
    lines += [_format_tensor("input", i, t) for i, t in enumerate(info["inputs"])]
    lines += [_format_tensor("output", i, t) for i, t in enumerate(info["outputs"])]
    return "\n".join(lines)
