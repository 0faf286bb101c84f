"""The new classifier head: softmax regression on embeddings, in numpy.

A linear head on a frozen embedding is what fits a few hundred images without
overfitting, trains in well under a second, and grafts as one FULLY_CONNECTED op.
Targets may be hard labels or soft probabilities (distillation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from camapp.config.training import HeadSettings


@dataclass
class Head:
    """Float weights over raw (dequantized) embeddings: logits = x @ weights.T + bias."""

    weights: np.ndarray  # (classes, dim) float32
    bias: np.ndarray  # (classes,) float32
    history: list[tuple[float, float | None]] = field(default_factory=list)  # (train, val) loss
    epochs: int = 0  # epochs actually run (early stopping ends sooner)
    kept: int = 0  # the epoch whose weights these are: the best watched loss

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights.T + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(labels), classes), np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def cross_entropy(head: Head, x: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy against target distributions (one-hot rows for hard labels)."""
    p = head.predict_proba(x)
    return float(-(targets * np.log(p + 1e-9)).sum(axis=1).mean())


class _Adam:
    """Adam on the standardized problem: it converges in tens of epochs on any embedding."""

    def __init__(self, shapes: list[tuple[int, ...]], rate: float) -> None:
        self.rate, self.t = rate, 0
        self.m = [np.zeros(s, np.float32) for s in shapes]
        self.v = [np.zeros(s, np.float32) for s in shapes]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            m_hat = m / (1 - 0.9**self.t)
            v_hat = v / (1 - 0.999**self.t)
            p -= self.rate * m_hat / (np.sqrt(v_hat) + 1e-8)


def _epoch(
    head: Head, opt: _Adam, x: np.ndarray, y: np.ndarray, l2: float, order: np.ndarray, batch: int
) -> None:
    """One pass of minibatch steps: the softmax cross-entropy gradient is (p - y) x."""
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        err = (head.predict_proba(x[rows]) - y[rows]) / len(rows)
        grad_w = err.T @ x[rows] + l2 * head.weights
        opt.step([head.weights, head.bias], [grad_w, err.sum(axis=0)])


def train_head(
    x: np.ndarray,
    targets: np.ndarray,
    x_val: np.ndarray | None = None,
    targets_val: np.ndarray | None = None,
    settings: HeadSettings | None = None,
) -> Head:
    """Fit a softmax head; stop when the validation loss has not improved for `patience` epochs.

    Features are centred and scaled by one global factor while fitting (so one step size
    suits every base model), folded back into the weights so the head reads raw embeddings.
    One factor, not one per feature: per-feature scaling blows up the weights of
    near-constant features, and a few huge weights ruin per-channel int8 quantization.
    """
    s = settings or HeadSettings()
    rng = np.random.default_rng(s.seed)
    mean, std = x.mean(axis=0), float(x.std()) + 1e-6
    xs = ((x - mean) / std).astype(np.float32)
    xv = None if x_val is None or not len(x_val) else ((x_val - mean) / std).astype(np.float32)
    head = Head(
        np.zeros((targets.shape[1], x.shape[1]), np.float32), np.zeros(targets.shape[1], np.float32)
    )
    opt = _Adam([head.weights.shape, head.bias.shape], s.learning_rate)
    best, best_loss, waited, kept = (head.weights.copy(), head.bias.copy()), np.inf, 0, 0
    for epoch in range(1, s.max_epochs + 1):
        _epoch(head, opt, xs, targets, s.l2, rng.permutation(len(xs)), s.batch_size)
        val_loss = None if xv is None else cross_entropy(head, xv, targets_val)
        head.history.append((cross_entropy(head, xs, targets), val_loss))
        head.epochs = epoch
        watched = head.history[-1][0] if val_loss is None else val_loss
        if watched < best_loss - 1e-5:
            best, best_loss, waited = (head.weights.copy(), head.bias.copy()), watched, 0
            kept = epoch
        elif (waited := waited + 1) >= s.patience:
            break
    weights = best[0] / std
    return Head(
        weights.astype(np.float32),
        (best[1] - weights @ mean).astype(np.float32),
        head.history,
        head.epochs,
        kept,
    )
