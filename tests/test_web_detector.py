"""A detector camera's live view in a real browser (Debian's Chromium, headless, through the
system chromedriver) against the real `camapp run` with the real SSD on the clip of people
walking in, and a real mosquitto: the page draws the tracked person's box, and a zone drawn
by clicking on the picture is sent through the page's `set` and published by the camera.

`CAMAPP_SCREENSHOT=docs/live-view-detector.png` keeps the README's picture of it there
(`make screenshot`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from camapp import models
from tests.conftest import SHARED_MEDIA, SHARED_MODELS
from tests.test_web_browser import as_phone, wait
from tests.web_helpers import LiveCamapp, browser

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
# The zone clicked: the right half, as fractions of the picture.
CORNERS = [(0.5, 0.1), (0.95, 0.1), (0.95, 0.9), (0.5, 0.9)]


# The first box drawn, its label, the drawn layer and the picture (x, y, width, height), once
# the picture has loaded.
DRAWN = """
const card = arguments[0], img = card.querySelector('img.frame');
const box = card.querySelector('svg.marks rect.box');
if (!box || !img.naturalWidth) return null;
const at = (e) => { const b = e.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; };
return {box: at(box), label: card.querySelector('svg.marks text.box-label').textContent,
        marks: at(card.querySelector('svg.marks')), picture: at(img)};
"""


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    chrome = browser(tmp_path / "profile")
    yield chrome
    chrome.quit()


@pytest.fixture
def hall(tmp_path: Path, broker) -> Iterator[LiveCamapp]:
    """`camapp run` of the SSD on the clip (looping), camera `hall`, with the page on."""
    folder = tmp_path / "models"
    models.fetch("ssd_mobilenet_v1_coco", folder, mirror=SHARED_MODELS)
    args = ["--source", str(CLIP), "--loop", "--model", "ssd_mobilenet_v1_coco", "--stride",
            "3", "--camera-id", "hall", "--mqtt-host", "127.0.0.1",
            "--mqtt-port", str(broker.port)]  # fmt: skip
    app = LiveCamapp(args, folder)
    yield app
    code, err = app.stop()
    assert code == 0, err[-500:]


def test_the_page_draws_the_person_and_a_clicked_zone_is_published(
    driver: Any, hall: LiveCamapp, broker, subscriber_factory
) -> None:
    sub = subscriber_factory(broker.port, ["camapp/hall/config", "camapp/hall/state"])
    driver.get(hall.url + "/")
    card = wait(lambda: driver.find_elements("css selector", 'section[data-camera="hall"]'))[0]
    _has_no_labelling(driver, card, hall.url)
    _draws_the_person(driver, card)
    _draw(driver, card, "door")
    wait(lambda: card.find_elements("css selector", 'svg.shapes polygon[data-zone="door"]'))
    sub.wait_for(lambda: _zones(sub, "config") and _zones(sub, "config")[0]["name"] == "door")
    [zone] = _zones(sub, "config")
    assert all(abs(a - b) < 0.02 for p, q in zip(zone["points"], CORNERS, strict=True)
               for a, b in zip(p, q, strict=True)), zone  # fmt: skip
    sub.wait_for(lambda: "door" in (_zones(sub, "state") or {}))
    if keep := os.environ.get("CAMAPP_SCREENSHOT"):
        wait(lambda: card.find_elements("css selector", "svg.marks rect.box"))
        assert driver.save_screenshot(keep)
    # The same name again: refused with the `set` topic's line, nothing changed.
    configs = len(sub.on("camapp/hall/config"))
    _draw(driver, card, "door")
    note = card.find_element("css selector", ".zone-note")
    wait(lambda: note.text == "zones: zone 'door' is defined more than once")
    assert len(sub.on("camapp/hall/config")) == configs
    card.find_element("css selector", "button.zone-cancel").click()
    # A 390 px phone: the picture fills the screen's width, nothing scrolls sideways.
    as_phone(driver)
    width, shown = driver.execute_script(
        "return [document.documentElement.scrollWidth,"
        " document.querySelector('img.frame').getBoundingClientRect().width]"
    )
    assert width <= 390 and shown >= 340, (width, shown)
    # Delete it: the camera has no zone left.
    card.find_element("css selector", '.zone-list li[data-zone="door"] button').click()
    sub.wait_for(lambda: _zones(sub, "config") == [])
    assert "deleted door" in note.text


def _has_no_labelling(driver: Any, card: Any, url: str) -> None:
    """A detector's card has no labelling, and its labelling routes say so in one line."""
    assert not card.find_element("css selector", ".labelling").is_displayed()
    for path in ("labelling", "strip/1", "training/report"):
        status, body = driver.execute_script(
            "return fetch(arguments[0]).then(async r => [r.status, await r.text()])",
            f"{url}/api/cameras/hall/{path}",
        )
        assert (status, json.loads(body)) == (404, {"error": "a detector camera has no labelling"})


def _draws_the_person(driver: Any, card: Any) -> None:
    """The person's box, with its label, score and id, over the picture, read at one moment
    (the page redraws them at every objects message). What is drawn lies over the picture
    exactly (its fractions are the picture's), on a wide screen where the card's side column
    is the taller."""
    drawn = wait(lambda: driver.execute_script(DRAWN, card))
    x, y, _, height = drawn["box"]
    px, py, pw, ph = drawn["picture"]
    assert drawn["label"].startswith("person ") and "% #" in drawn["label"], drawn
    assert all(abs(a - b) < 1 for a, b in zip(drawn["marks"], drawn["picture"], strict=True))
    assert 0.05 < height / ph <= 1.0 and px <= x < px + pw and py - 1 <= y < py + ph, drawn


def _draw(driver: Any, card: Any, name: str) -> None:
    """Draw a zone as a person does: four clicks on the picture, a name, save."""
    from selenium.webdriver.common.action_chains import ActionChains

    img = card.find_element("css selector", "img.frame")
    w, h = img.rect["width"], img.rect["height"]
    card.find_element("css selector", "button.zone-draw").click()
    for x, y in CORNERS:
        offset = round((x - 0.5) * w), round((y - 0.5) * h)  # from the picture's centre
        ActionChains(driver).move_to_element_with_offset(img, *offset).click().perform()
    card.find_element("css selector", ".zone-form input[name=name]").send_keys(name)
    card.find_element("css selector", "button.zone-save").click()


def _zones(sub: Any, topic: str) -> Any:
    """The `zones` of the latest message on the camera's `topic` (None before any)."""
    got = sub.on(f"camapp/hall/{topic}")
    return json.loads(got[-1].payload)["zones"] if got else None
