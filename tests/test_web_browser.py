"""The live view in a real browser: Debian's Chromium, headless, driven by Selenium through the
system chromedriver, against the real `camapp run` (two cameras, a password) and a real
mosquitto.

`CAMAPP_SCREENSHOT=docs/live-view.png` makes the screenshot test also keep the README's
picture there (`make screenshot`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.conftest import SHARED_MEDIA
from tests.mqtt_helpers import Broker, Subscriber
from tests.web_helpers import LiveCamapp, browser, still_clip

PASSWORD = "let me see"
RANGES = SHARED_MEDIA.parent / "datasets" / "one-by-one-person-occupancy.json"
ONE_BY_ONE = SHARED_MEDIA / "one-by-one-person-detection.mp4"
TIMEOUT = 15


@pytest.fixture(scope="module")
def porch_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets") / "porch"


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, porch_dataset: Path
) -> Iterator[tuple[LiveCamapp, Broker]]:
    """Two cameras: a still photo (one label throughout) and the parking-lot clip."""
    tmp = tmp_path_factory.mktemp("live")
    broker = Broker(tmp).start()
    clip = still_clip(tmp / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp", frames=30)
    config = tmp / "c.toml"
    config.write_text(
        f"loop = true\nworkers = 2\nstats_interval = 1\nsnapshot_interval = 0\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'[[cameras]]\ncamera_id = "porch"\nsource = "{clip}"\ndataset = "{porch_dataset}"\n'
        f'[[cameras]]\ncamera_id = "yard"\nsource = "{SHARED_MEDIA / "car-detection.mp4"}"\n'
        "cpu_budget = 10\n"  # the CPU chart's dashed line
    )
    app = LiveCamapp(["--config", str(config)], model_dir, env={"CAMAPP_HTTP_PASSWORD": PASSWORD})
    yield app, broker
    code, err = app.stop()
    broker.stop()
    assert code == 0, err[-500:]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    chrome = browser(tmp_path / "profile")
    yield chrome
    chrome.quit()


def wait(check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(None, timeout, poll_frequency=0.1).until(lambda _: check())


def log_in(driver: Any, url: str, password: str) -> None:
    driver.get(url + "/login")
    field = driver.find_element("id", "password")
    field.send_keys(password)
    driver.find_element("css selector", "button[type=submit]").click()


@pytest.fixture
def page(driver: Any, live: tuple[LiveCamapp, Broker]) -> Any:
    log_in(driver, live[0].url, PASSWORD)
    wait(lambda: len(driver.find_elements("css selector", "section.camera")) == 2)
    return driver


def type_into(field: Any, text: str) -> None:
    """As a person does: select what is there, type over it, move on (which sends it)."""
    from selenium.webdriver.common.keys import Keys

    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text, Keys.TAB)


def card(driver: Any, camera: str) -> Any:
    return driver.find_element("css selector", f'section.camera[data-camera="{camera}"]')


def test_a_wrong_password_is_refused(driver: Any, live: tuple[LiveCamapp, Broker]) -> None:
    url = live[0].url
    log_in(driver, url, "not it")
    wait(lambda: driver.find_element("id", "error").text == "wrong password")
    assert driver.current_url == url + "/login"
    driver.get(url + "/")
    assert driver.current_url == url + "/login"  # no session: sent back to log in
    assert not driver.find_elements("css selector", "section.camera")


def test_the_page_shows_every_camera_and_the_pictures_update(page: Any) -> None:
    porch, yard = card(page, "porch"), card(page, "yard")
    assert porch.find_element("css selector", ".camera-id").text.startswith("porch")
    assert yard.find_element("css selector", ".camera-id").text.startswith("yard")
    for section in (porch, yard):
        wait(lambda s=section: int(s.get_attribute("data-pictures")) >= 3)
    first = porch.find_element("css selector", "img.frame").get_attribute("src")
    wait(lambda: porch.find_element("css selector", "img.frame").get_attribute("src") != first)
    # Read once both pictures have decoded (a new one is 0x0 while it loads).
    sizes = wait(
        lambda: page.execute_script(
            "const s = [...document.querySelectorAll('img.frame')]"
            ".map(i => [i.naturalWidth, i.naturalHeight]);"
            "return s.every(([w]) => w > 0) && s"
        )
    )
    assert sizes == [[640, 480], [640, 360]]  # the car clip (768x432) scaled to view_width
    # A grid: two cameras side by side.
    assert porch.rect["y"] == yard.rect["y"] and porch.rect["x"] < yard.rect["x"]


def test_the_overlay_shows_the_label_of_the_classification_topic(
    page: Any, live: tuple[LiveCamapp, Broker]
) -> None:
    sub = Subscriber(live[1].port, ["camapp/porch/classification"])
    try:
        sub.wait_for(lambda: bool(sub.messages))
        label = json.loads(sub.messages[-1].payload)["label"]
    finally:
        sub.close()
    porch = card(page, "porch")
    wait(lambda: porch.find_element("css selector", ".label").text == label)
    # The label and its list read at one moment: the picture goes on changing meanwhile.
    shown, listed = page.execute_script(
        "const c = arguments[0]; return [c.querySelector('.label').innerText,"
        " c.querySelector('.top-k').innerText];",
        porch,
    )
    top = listed.splitlines()  # the list stays
    assert len(top) == 5 and top[0].startswith(shown)
    # The model's centre crop of a 4:3 picture: the middle three quarters of its width.
    region = porch.find_element("css selector", ".region")
    assert region.is_displayed()
    assert region.value_of_css_property("left") != "0px"
    style = page.execute_script("return arguments[0].style.width", region)
    assert style == "75%"


def test_a_control_change_reaches_the_retained_config(
    page: Any, live: tuple[LiveCamapp, Broker]
) -> None:
    port = live[1].port
    porch = card(page, "porch")
    threshold = porch.find_element("css selector", "input[name=threshold]")
    wait(lambda: threshold.get_attribute("value") == "0.5")
    type_into(threshold, "0.8")
    stride = porch.find_element("css selector", "input[name=stride]")
    type_into(stride, "0")  # below its bounds: refused with the set topic's words
    wait(lambda: "stride" in porch.find_element("css selector", ".control-error").text)
    later = Subscriber(port, ["camapp/porch/config"])
    try:
        later.wait_for(lambda: bool(later.messages))
        [retained] = later.messages
        config = json.loads(retained.payload)
        assert retained.retain and config["threshold"] == 0.8 and config["stride"] == 1
        # And back, through the broker: the page follows a change made over MQTT.
        later.publish("camapp/porch/set", json.dumps({"threshold": 0.5}))
    finally:
        later.close()
    wait(lambda: threshold.get_attribute("value") == "0.5")


def test_class_buttons_and_the_strip_save_files_in_the_dataset(
    page: Any, porch_dataset: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    def saved() -> list[Path]:
        return sorted((porch_dataset / "hopper").glob("*.jpg"))

    porch = card(page, "porch")
    porch.find_element("css selector", ".new-class input").send_keys("hopper", Keys.ENTER)
    wait(lambda: len(saved()) == 1)
    button = wait(
        lambda: porch.find_elements("css selector", '.class-buttons button[data-label="hopper"]')
    )
    button[0].click()
    wait(lambda: len(saved()) == 2)
    status = porch.find_element("css selector", ".label-error")
    wait(lambda: "saving the next frame as hopper" in status.text)  # the page says so too
    assert cv2.imread(str(saved()[1])).shape == (480, 640, 3)
    # The photo scores under the threshold (0.5): its frames fill the strip, one click each.
    unsure = wait(
        lambda: porch.find_elements("css selector", '.strip figure button[data-label="hopper"]')
    )
    unsure[0].click()
    wait(lambda: len(saved()) == 3)
    wait(lambda: "saved frame" in status.text)  # the page's answer follows the file


def test_one_camera_fits_a_phone_too(driver: Any, model_dir: Path, tmp_path: Path) -> None:
    """One camera lays its picture and its controls side by side on a wide screen; on a
    phone the picture takes the screen's width."""
    clip = still_clip(tmp_path / "hopper.mp4", SHARED_MEDIA / "grace_hopper.bmp")
    # No broker: the page does not need one.
    args = ["--source", str(clip), "--loop", "--snapshot-interval", "0", "--workers", "1",
            "--mqtt-port", "1"]  # fmt: skip
    app = LiveCamapp(args, model_dir, env={"CAMAPP_HTTP_PASSWORD": PASSWORD})
    try:
        log_in(driver, app.url, PASSWORD)
        as_phone(driver)
        section = wait(lambda: driver.find_elements("css selector", "section.camera"))[0]
        wait(lambda: int(section.get_attribute("data-pictures")) >= 1)
        width, picture = driver.execute_script(
            "return [document.documentElement.scrollWidth,"
            " document.querySelector('img.frame').getBoundingClientRect().width]"
        )
        assert width <= 390 and picture >= 340, (width, picture)
    finally:
        app.stop()


def test_the_training_status_says_how_it_ended(page: Any, porch_dataset: Path) -> None:
    """A failed training says why, a finished one its accuracy and where its report is; and
    neither still says it is training."""
    from camapp.training import dataset_from_clip

    porch = card(page, "porch")
    status = porch.find_element("css selector", ".train-status")
    labelling = porch.find_element("css selector", ".labelling")
    shutil.rmtree(porch_dataset, ignore_errors=True)
    (porch_dataset / "hopper").mkdir(parents=True)  # one class: refused
    porch.find_element("css selector", "button.train").click()
    wait(lambda: porch.get_attribute("data-training") == "failed")
    wait(lambda: "at least 2 class folders" in status.text)
    assert "training…" not in labelling.text
    assert status.text.startswith("training failed: ")
    assert not porch.find_element("css selector", ".train-report").is_displayed()
    shutil.rmtree(porch_dataset)
    dataset_from_clip(ONE_BY_ONE, RANGES, porch_dataset, 0, 700, 25)
    porch.find_element("css selector", "button.train").click()
    wait(lambda: porch.get_attribute("data-training") == "done", 120)
    wait(lambda: "right on" in status.text)
    assert status.text.startswith("trained ") and "%" in status.text, status.text
    assert "training…" not in labelling.text and "training:" not in labelling.text
    report = porch.find_element("css selector", ".train-report")
    assert report.is_displayed() and report.get_attribute("target") == "_blank"
    fetched = page.execute_script(
        "return fetch(arguments[0]).then(async r => [r.status, await r.text()])",
        report.get_attribute("href"),
    )
    assert fetched[0] == 200 and "porch-" in fetched[1]
    assert porch.find_element("css selector", ".use-model").is_displayed()


def test_screenshot(page: Any, tmp_path: Path) -> None:
    """The README's picture: the page with pictures, overlays and a few points of charts."""
    keep = os.environ.get("CAMAPP_SCREENSHOT")
    points = 8 if keep else 2
    for camera in ("porch", "yard"):
        value = card(page, camera).find_element(
            "css selector", "[data-chart=rate] + figcaption .value"
        )
        wait(lambda v=value: v.text not in ("", "n/a"))
    wait(
        lambda: (
            page.execute_script("return document.querySelectorAll('img.frame')[1].naturalWidth") > 0
        )
    )
    page.execute_script(f"return new Promise(r => setTimeout(r, {(points - 2) * 1000}))")
    shot = tmp_path / "live-view.png"
    assert page.save_screenshot(str(shot))
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] >= 1000 and image.std() > 20
    if keep:
        shutil.copyfile(shot, keep)


def as_phone(driver: Any) -> None:
    """The page as a 390 px wide phone shows it."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True},
    )


def test_a_phone_sees_the_page_without_sideways_scrolling(page: Any) -> None:
    """A 390 px wide phone: nothing wider than the screen (pictures, charts, controls, a full
    strip), and the strip's scrollbar in the page's dark colours."""
    as_phone(page)
    try:
        porch = card(page, "porch")
        # The photo scores under the threshold: the strip fills wider than the screen.
        wait(lambda: len(porch.find_elements("css selector", ".strip figure")) >= 4)
        wait(lambda: int(porch.get_attribute("data-pictures")) >= 1)
        widths = page.execute_script(
            "const s = document.querySelector('.strip');"
            "return [document.documentElement.scrollWidth, screen.width,"
            " s.scrollWidth, s.clientWidth, getComputedStyle(s).scrollbarColor,"
            " getComputedStyle(document.documentElement).colorScheme];"
        )
        document, screen, strip, shown, scrollbar, scheme = widths
        assert screen == 390 and document <= 390, widths
        assert strip > shown  # the strip scrolls inside the card, not the page
        assert scheme == "dark" and scrollbar != "auto", widths
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
