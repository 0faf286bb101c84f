"""`camapp model info`: what a model file holds, read without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camapp.errors import ConfigError
from camapp.models.labels import read_labels
from camapp.models.manifest import load_manifest
from camapp.models.store import labels_beside
from camapp.tflite.graph import TensorInfo
from camapp.tflite.modelfile import open_model


def _tensor_info(tensor: TensorInfo) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "scale": tensor.scale[0] if tensor.quantized else 0.0,
        "zero_point": tensor.zero_point[0] if tensor.quantized and tensor.zero_point else 0,
    }


def model_info(model_path: Path) -> dict[str, Any]:
    """Describe a model file from its graph alone, so Edge TPU builds work on any host."""
    file = open_model(model_path)
    try:
        labels: int | None = len(read_labels(file))
    except ConfigError:
        labels = None
    beside = labels_beside(file.path)
    # Bundled labels win over the file fetched beside the model (see read_labels).
    labels_file = str(beside) if beside and not file.labels else None
    specs = load_manifest().values()
    manifest_name = next((s.name for s in specs if s.sha256 == file.sha256), None)
    return {
        "path": str(file.path),
        "bytes": len(file.data),
        "sha256": file.sha256,
        "kind": str(file.kind),
        "kind_why": file.why,
        "inputs": [_tensor_info(t) for t in file.info.inputs],
        "outputs": [_tensor_info(t) for t in file.info.outputs],
        "labels": labels,
        "labels_file": labels_file,  # where the labels come from when not embedded
        "manifest_name": manifest_name,
        "delegate": "edgetpu" if file.info.edgetpu else None,
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
        f"kind:      {info['kind']}: {info['kind_why']}",
        f"size:      {info['bytes']} bytes ({info['bytes'] / 2**20:.1f} MiB)",
        f"sha256:    {info['sha256']}",
        f"labels:    {labels}",
    ]
    if info.get("delegate"):
        lines.append(f"delegate:  {info['delegate']} (cannot run on a plain CPU)")
    lines += [_format_tensor("input", i, t) for i, t in enumerate(info["inputs"])]
    lines += [_format_tensor("output", i, t) for i, t in enumerate(info["outputs"])]
    return "\n".join(lines)
