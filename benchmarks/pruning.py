"""Does pruning make an int8 model faster under LiteRT (XNNPACK) on this CPU?

Writes variants of the shared int8 MobileNetV2 with LiteRT's flatbuffer tools and times them
against the original in one run, interleaved round by round (a machine shared with other
work shifts every variant alike; only the ratios mean anything):

- unstructured: the smallest weights (by real magnitude, per tensor) set to zero;
- channels zeroed: the weakest whole output channels (L2 norm) of every conv, depthwise and
  fully connected layer set to zero, tensors kept their size;
- channels removed: the weakest hidden channels of every inverted-residual block really cut
  out (expansion conv outputs, depthwise channels, projection conv inputs): what structured
  pruning becomes once a tool shrinks the tensors.

None is fine-tuned (and a removed channel's constant output, its bias through ReLU6, is not
folded into the next layer), so the agreement column (top-1 against the original on the
photos and frames of the shared clips) only shows what the cut costs before any retraining.

    python benchmarks/pruning.py [--rounds 5] [--invokes 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ai_edge_litert import schema_py_generated as schema
from paths import CLIPS, INT8, MEDIA

from camapp.inference import loader
from camapp.tflite import bundle, edit
from camapp.tflite.modelfile import open_model, write
from camapp.tools.calibration import read_frames

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
OUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
RAW = {"INT8": np.int8, "INT32": np.int32}


class Graph:
    """The int8 model as objects, with what the edits need to find their way."""

    def __init__(self, path: Path) -> None:
        self.source = open_model(path)
        self.model = self.source.editable()
        self.graph = self.model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items()}
        self.types = {v: k for k, v in vars(schema.TensorType).items()}
        codes = edit.builtin_codes(self.model)
        self.ops = [(names.get(codes[op.opcodeIndex], "?"), op) for op in self.graph.operators]
        self.producer = {t: named for named in self.ops for t in named[1].outputs}
        self.consumers: dict[int, list[tuple[str, Any]]] = {}
        for named in self.ops:
            for t in named[1].inputs:
                self.consumers.setdefault(int(t), []).append(named)

    def values(self, index: int) -> np.ndarray:
        """A constant tensor's stored integers, shaped."""
        tensor = self.graph.tensors[index]
        raw = self.model.buffers[tensor.buffer].data
        dtype = RAW[self.types[tensor.type]]
        return np.frombuffer(raw.tobytes(), dtype).reshape(tensor.shape).copy()

    def real(self, index: int, axis: int) -> np.ndarray:
        """A weight tensor's real values (per-channel scales along `axis`)."""
        q = self.graph.tensors[index].quantization
        values = self.values(index).astype(np.float32)
        shape = [1] * values.ndim
        shape[axis] = -1
        return values * np.asarray(q.scale, np.float32).reshape(shape if len(q.scale) > 1 else ())

    def store(self, index: int, values: np.ndarray) -> None:
        tensor = self.graph.tensors[index]
        self.model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
        tensor.shape = np.asarray(values.shape, np.int32)

    def weights(self) -> list[tuple[str, int]]:
        return [(name, int(op.inputs[1])) for name, op in self.ops if name in WEIGHTED]

    def write(self, path: Path) -> None:
        write(path, self.model, bundle.pack(self.source.bundle.members))


def unstructured(graph: Graph, fraction: float) -> None:
    """Zero the smallest `fraction` of each weight tensor (int8 weights: zero point 0)."""
    for name, index in graph.weights():
        magnitude = np.abs(graph.real(index, OUT_AXIS[name]))
        cut = np.quantile(magnitude, fraction)
        values = graph.values(index)
        values[magnitude <= cut] = 0
        graph.store(index, values)


def channels_zeroed(graph: Graph, fraction: float) -> None:
    """Zero the weakest `fraction` of each weight tensor's output channels."""
    for name, index in graph.weights():
        axis = OUT_AXIS[name]
        real = np.moveaxis(graph.real(index, axis), axis, 0)
        norms = np.sqrt((real.reshape(len(real), -1) ** 2).sum(axis=1))
        weakest = np.argsort(norms)[: int(fraction * len(norms))]
        values = np.moveaxis(graph.values(index), axis, 0)
        values[weakest] = 0
        graph.store(index, np.ascontiguousarray(np.moveaxis(values, 0, axis)))


def _take(graph: Graph, index: int, keep: np.ndarray, axis: int) -> None:
    """Keep only channels `keep` along `axis` of a tensor, constant or not."""
    tensor = graph.graph.tensors[index]
    if tensor.buffer and graph.model.buffers[tensor.buffer].data is not None:
        graph.store(index, np.ascontiguousarray(np.take(graph.values(index), keep, axis)))
    else:
        shape = np.array(tensor.shape)
        shape[axis] = len(keep)
        tensor.shape = shape.astype(np.int32)
    q = tensor.quantization
    if q is not None and q.scale is not None and len(q.scale) > 1 and q.quantizedDimension == axis:
        q.scale = np.asarray(q.scale)[keep]
        q.zeroPoint = np.asarray(q.zeroPoint)[keep]


def channels_removed(graph: Graph, fraction: float) -> None:
    """Cut the weakest `fraction` of each inverted-residual block's hidden channels out."""
    for name, depthwise in graph.ops:
        hidden = int(depthwise.inputs[0])
        expand = graph.producer.get(hidden)
        users = graph.consumers.get(int(depthwise.outputs[0]), [])
        if name != "DEPTHWISE_CONV_2D" or expand is None or expand[0] != "CONV_2D":
            continue
        if len(graph.consumers[hidden]) != 1 or len(users) != 1 or users[0][0] != "CONV_2D":
            continue
        expand_op, project_op = expand[1], users[0][1]
        real = graph.real(int(expand_op.inputs[1]), 0)
        norms = np.sqrt((real.reshape(len(real), -1) ** 2).sum(axis=1))
        keep = np.sort(np.argsort(norms)[::-1][: math.ceil((1 - fraction) * len(norms))])
        for index, axis in (
            (expand_op.inputs[1], 0),
            (expand_op.inputs[2], 0),
            (hidden, 3),
            (depthwise.inputs[1], 3),
            (depthwise.inputs[2], 0),
            (depthwise.outputs[0], 3),
            (project_op.inputs[1], 3),
        ):
            _take(graph, int(index), keep, axis)


def zeros(path: Path) -> tuple[float, int]:
    """Share of zero weights, and MACs per inference (from the graph)."""

    graph = Graph(path)
    counts = [(int((graph.values(i) == 0).sum()), graph.values(i).size) for _, i in graph.weights()]
    return sum(z for z, _ in counts) / sum(n for _, n in counts), open_model(path).info.macs or 0


def time_rounds(
    paths: dict[str, Path], frame: np.ndarray, rounds: int, invokes: int, threads: int
) -> dict[str, float]:
    """Median invoke time (ms) of each model, the models taking turns round by round."""
    classifiers = {
        name: loader.load(loader.plan(str(path), threads=threads, top_k=1))
        for name, path in paths.items()
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(classifiers)
    for turn in range(rounds):
        # Each round starts with another model, so none is always the one woken up first.
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            classifier = classifiers[name]
            classifier.classify(frame)  # warm: caches, threads
            times[name] += [classifier.classify(frame).inference_ms for _ in range(invokes)]
    return {name: statistics.median(values) for name, values in times.items()}


def agreement(original: Path, variant: Path, frames: list[np.ndarray]) -> float:
    a, b = loader.load_file(original, top_k=1), loader.load_file(variant, top_k=1)
    same = [a.classify(f).top_k[0].class_id == b.classify(f).top_k[0].class_id for f in frames]
    return sum(same) / len(same)


VARIANTS: dict[str, tuple[Callable[[Graph, float], None], float]] = {
    "unstructured 10%": (unstructured, 0.1),
    "unstructured 50%": (unstructured, 0.5),
    "unstructured 80%": (unstructured, 0.8),
    "channels zeroed 50%": (channels_zeroed, 0.5),
    "channels zeroed 80%": (channels_zeroed, 0.8),
    "hidden channels removed 2%": (channels_removed, 0.02),
    "hidden channels removed 10%": (channels_removed, 0.1),
    "hidden channels removed 25%": (channels_removed, 0.25),
    "hidden channels removed 50%": (channels_removed, 0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--invokes", type=int, default=20, help="timed invokes per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    frames = read_frames(MEDIA, 100, cover=224) + [
        f for clip in CLIPS for f in read_frames(clip, 20, cover=224)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"original": INT8}
        for name, (edit, fraction) in VARIANTS.items():
            graph = Graph(INT8)
            edit(graph, fraction)
            paths[name] = Path(tmp) / f"{name.replace(' ', '_').replace('%', '')}.tflite"
            graph.write(paths[name])
        median = time_rounds(paths, frames[0], args.rounds, args.invokes, args.threads)
        print(f"{args.threads} thread(s), {args.rounds} rounds x {args.invokes} invokes, "
              f"agreement on {len(frames)} images and frames\n")  # fmt: skip
        print("| model | zero weights | MACs M | median ms | speed-up | top-1 agreement |")
        print("|---|---|---|---|---|---|")
        for name, path in paths.items():
            share, macs = zeros(path)
            print(
                f"| {name} | {share:.0%} | {macs / 1e6:.0f} | {median[name]:.2f} "
                f"| {median['original'] / median[name]:.2f}x "
                f"| {agreement(INT8, path, frames):.0%} |"
            )


if __name__ == "__main__":
    main()
