"""lipgen demo: a real browser (headless Chromium) uploads the bundled photo and speech and gets a playable video
as long as the speech. Skipped where Gradio, Selenium or Chromium is missing."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lipgen import media
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE

pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no Chromium and chromedriver on this machine")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1500"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    server = subprocess.Popen([sys.executable, "-m", "lipgen", "demo", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if server.poll() is not None:
                pytest.fail(f"lipgen demo exited: {server.stdout.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("lipgen demo did not answer within 2 minutes")
        yield url
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def _wait(condition, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_demo_page_makes_a_playable_video_as_long_as_the_speech(page_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(page_url)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#speech input[type=file]"), 60, "the speech upload")
    browser.find_element(By.CSS_SELECTOR, "#speech input[type=file]").send_keys(str(SAMPLE_AUDIO))
    browser.find_element(By.CSS_SELECTOR, "#face input[type=file]").send_keys(str(SAMPLE_FACE))
    # the preview of the first frame with its faces numbered appears before any generation
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#preview img"), 120, "the faces preview")
    assert "One face found" in browser.find_element(By.TAG_NAME, "body").text
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#speech audio, #speech .waveform-container, #speech wave")
          or "jfk" in browser.find_element(By.ID, "speech").text, 60, "the speech upload to finish")
    browser.find_element(By.CSS_SELECTOR, "#generate").click()
    video = _wait(lambda: [v for v in browser.find_elements(By.CSS_SELECTOR, "#result video") if v.get_attribute("src")],
                  600, "the result video")[0]
    state = browser.execute_async_script("""
        const v = arguments[0], done = arguments[arguments.length - 1];
        const report = () => { v.muted = true; v.play().then(() => setTimeout(() => done(
            {duration: v.duration, time: v.currentTime, width: v.videoWidth, error: v.error && v.error.code}), 1500))
            .catch(e => done({error: String(e), duration: v.duration})); };
        if (v.readyState >= 1) report(); else { v.addEventListener('loadedmetadata', report);
            v.addEventListener('error', () => done({error: 'load error ' + (v.error && v.error.code)})); }
    """, video)
    speech_seconds = media.read_audio(SAMPLE_AUDIO).size / media.SAMPLE_RATE
    assert state.get("error") is None, state
    assert abs(state["duration"] - speech_seconds) < 0.2, (state, speech_seconds)
    assert state["width"] == 512  # the bundled photo's size: frames decoded
    assert state["time"] > 0  # it plays
    shot = os.environ.get("LIPGEN_DEMO_SCREENSHOT")
    if shot:
        browser.execute_script("arguments[0].pause(); arguments[0].currentTime = 2.0;", video)
        time.sleep(1)
        browser.save_screenshot(str(Path(shot)))
