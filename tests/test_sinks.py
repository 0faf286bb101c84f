"""What a result becomes on a terminal: whole labels, never cut or ambiguous."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from camapp.cli.classify import line
from camapp.inference.classifier import Classification, Prediction
from camapp.publish.sinks import PrintSink
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
