"""What a result becomes on a terminal: whole labels, never cut or ambiguous."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from camapp.cli.classify import line
from camapp.inference.classifier import Classification, Prediction
from camapp.publish.sinks import ClassificationSink, PrintSink
from camapp.runtime.camera import Result

LONG = "Athene cunicularia (Burrowing Owl), a small long-legged owl"
TOP = [Prediction(1, LONG, 0.9), Prediction(2, "tabby, tabby cat", 0.05)]


def test_print_sink_keeps_long_labels_whole(capsys: pytest.CaptureFixture[str]) -> None:
    result = Result(7, time.time(), time.monotonic(), Classification(TOP, 3.0, "bird"))
    PrintSink("feeder").send(result)
    assert LONG in capsys.readouterr().out


def test_classify_text_quotes_labels_that_hold_commas() -> None:
    text = line(Path("owl.jpg"), Classification(TOP, 3.0, "bird"), as_json=False)
    assert text == f"owl.jpg: {LONG!r} (0.90); then 'tabby, tabby cat' 0.05"


class Recorder:
    """Stands in for a camera's Channel: keeps what is published."""

    camera_id = "cam0"

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def publish(self, name: str, payload: str, retain: bool = False, **_: object) -> None:
        self.published.append((name, payload))


def test_state_becomes_none_when_no_label_holds_and_never_sticks() -> None:
    import json

    from camapp.publish.state import StateSink
    from camapp.runtime.controls import Controls

    channel = Recorder()
    sink = StateSink(channel, Controls(threshold=0.5), frames=3)  # type: ignore[arg-type]
    scores = [("car", 0.9)] * 3 + [("car", 0.2)] * 2 + [("car", 0.9)] + [("car", 0.1)] * 3
    scores += [("bus", 0.8)] * 2 + [("car", 0.7)] * 3
    for frame, (label, score) in enumerate(scores):
        top = [Prediction(0, label, score)]
        sink.send(Result(frame, float(frame), 0.0, Classification(top, 1.0, "m")))
    states = [json.loads(payload) for _, payload in channel.published]
    # car (frames 0-2); two unsure frames break nothing; three do: none (since frame 6);
    # two bus frames are not enough; three car frames are.
    assert [(s["label"], s["since"]) for s in states] == [("car", 0.0), (None, 6.0), ("car", 11.0)]
    assert states[1]["score"] is None


def test_classification_payload_is_json_with_numpy_figures_and_any_label() -> None:
    """The classification's JSON, written straight to bytes: numpy scalars a plugin backend
    may report are numbers, and a label outside ASCII comes back as it was."""
    top = [Prediction(np.int64(3), "Tétras lyre", np.float32(0.5)), Prediction(1, "b", 0.25)]
    result = Result(7, 1700000000.5, time.monotonic(), Classification(top, np.float64(3.25), "m"))
    recorder = Recorder()
    ClassificationSink(recorder).send(result)  # type: ignore[arg-type]
    [(name, payload)] = recorder.published
    message = json.loads(payload)
    assert name == "classification" and message["label"] == "Tétras lyre"
    assert (message["class_id"], message["score"], message["inference_ms"]) == (3, 0.5, 3.25)
    assert [p["class_id"] for p in message["top_k"]] == [3, 1] and message["ts"] == 1700000000.5
