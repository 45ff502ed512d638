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

import numpy as np
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


def _play(browser, video) -> dict:
    """Play a <video> muted for 1.5 s: its duration, current time, width and error."""
    return browser.execute_async_script("""
        const v = arguments[0], done = arguments[arguments.length - 1];
        const report = () => { v.muted = true; v.play().then(() => setTimeout(() => done(
            {duration: v.duration, time: v.currentTime, width: v.videoWidth, error: v.error && v.error.code}), 1500))
            .catch(e => done({error: String(e), duration: v.duration})); };
        if (v.readyState >= 1) report(); else { v.addEventListener('loadedmetadata', report);
            v.addEventListener('error', () => done({error: 'load error ' + (v.error && v.error.code)})); }
    """, video)


def _upload(browser):
    """Open the page, upload the bundled speech and photo, wait for the faces preview and the speech."""
    from selenium.webdriver.common.by import By

    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#speech input[type=file]"), 60, "the speech upload")
    browser.find_element(By.CSS_SELECTOR, "#speech input[type=file]").send_keys(str(SAMPLE_AUDIO))
    browser.find_element(By.CSS_SELECTOR, "#face input[type=file]").send_keys(str(SAMPLE_FACE))
    # the preview of the first frame with its faces numbered appears before any generation
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#preview img"), 120, "the faces preview")
    assert "One face found" in browser.find_element(By.TAG_NAME, "body").text
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#speech audio, #speech .waveform-container, #speech wave")
          or "jfk" in browser.find_element(By.ID, "speech").text, 60, "the speech upload to finish")


def test_demo_page_makes_a_playable_video_as_long_as_the_speech(page_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(page_url)
    _upload(browser)
    browser.find_element(By.CSS_SELECTOR, "#generate").click()
    video = _wait(lambda: [v for v in browser.find_elements(By.CSS_SELECTOR, "#result video") if v.get_attribute("src")],
                  600, "the result video")[0]
    state = _play(browser, video)
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


def test_live_view_shows_frames_while_the_speech_plays(page_url, browser):
    """Live: the page's image is replaced again and again while the speech plays (at real-time pace), spread
    over the speech, and then the finished mp4 is offered, as long as the speech."""
    from selenium.webdriver.common.by import By

    browser.get(page_url)
    _upload(browser)
    # every new src of the live image and of the result video, with its time (ms) from the click
    browser.execute_script("""
        window.seen = {live: [], result: []};
        const watch = (id, into) => new MutationObserver(() => {
            const el = document.querySelector(id);
            const src = el && el.getAttribute('src'), last = into[into.length - 1];
            if (src && (!last || last.src !== src)) into.push({src: src, t: performance.now() - window.clicked});
        }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
        watch('#live img', window.seen.live); watch('#result video', window.seen.result);
        window.clicked = performance.now();
    """)
    browser.find_element(By.CSS_SELECTOR, "#go-live").click()
    browser.execute_script("window.clicked = performance.now();")
    shot = os.environ.get("LIPGEN_DEMO_LIVE_SCREENSHOT")
    if shot:  # mid-run: a live frame and its status
        _wait(lambda: len(browser.execute_script("return window.seen.live")) > 40, 300, "40 live frames")
        browser.save_screenshot(str(Path(shot)))
    video = _wait(lambda: [v for v in browser.find_elements(By.CSS_SELECTOR, "#result video")
                           if v.get_attribute("src")], 600, "the finished video")[0]
    seen = browser.execute_script("return window.seen")
    speech_seconds = media.read_audio(SAMPLE_AUDIO).size / media.SAMPLE_RATE
    ended = seen["result"][0]["t"] / 1000
    live = [s["t"] / 1000 for s in seen["live"] if s["t"] / 1000 <= ended]
    status = browser.find_element(By.ID, "live-status").text
    print(f"live view: {len(live)} frames shown, the first {live[0]:.2f} s after the click, the last "
          f"{live[-1]:.2f} s; the mp4 offered {ended:.2f} s after it. Server: {status}")
    assert len(live) >= 20, seen["live"][:5]  # the view was updated many times before the run ended
    assert live[-1] - live[0] > speech_seconds / 2  # spread over the speech, not a burst at its end
    assert "Done: 275 frames (11.0 s)" in status
    state = _play(browser, video)
    assert state.get("error") is None, state
    assert abs(state["duration"] - speech_seconds) < 0.2, (state, speech_seconds)
    assert state["width"] == 512 and state["time"] > 0


def test_settings_are_checked_before_the_page_is_served():
    from lipgen.demo import check_settings

    for host, port, seconds, error in [("127.0.0.1", 99999, 60, "port"), ("127.0.0.1", 7860, -5, "max_seconds"),
                                       ("nonexistent.invalid", 7860, 60, "not an address")]:
        with pytest.raises(ValueError, match=error):
            check_settings(host, port, seconds, 10)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ValueError, match="give another --port"):
            check_settings("127.0.0.1", busy.getsockname()[1], 60, 10)


def test_inputs_over_the_pages_limit_are_refused_in_its_words(tmp_path):
    from lipgen.demo import check_inputs
    from lipgen.errors import LipgenError

    with pytest.raises(LipgenError, match=r"longer than this page takes \(5 s\)"):  # not the CLI's --max-seconds
        check_inputs(str(SAMPLE_AUDIO), str(SAMPLE_FACE), max_seconds=5)
    check_inputs(str(SAMPLE_AUDIO), str(SAMPLE_FACE), max_seconds=60)
    media.write_wav(tmp_path / "silent.wav", np.zeros(16000))
    with pytest.raises(media.MediaError, match="silent"):
        check_inputs(str(tmp_path / "silent.wav"), str(SAMPLE_FACE), max_seconds=60)


def test_the_face_number_takes_whole_numbers_from_0_and_refuses_the_rest_in_one_line():
    from lipgen.demo import face_number

    assert [face_number(v) for v in (None, "", 0, 2, 3.0, "1")] == [0, 0, 0, 2, 3, 1]
    for bad in ("abc", -1, 1.5, float("inf"), float("nan"), [1]):
        with pytest.raises(ValueError, match="give a whole number"):
            face_number(bad)


def test_the_page_without_gradio_is_refused_in_one_line_before_its_address(monkeypatch, capsys):
    import importlib.util

    from lipgen.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["demo", "--port", "7869"]) == 2
    out, err = capsys.readouterr()
    assert "http://" not in out and 'pip install "lipgen[demo]"' in err and len(err.strip().splitlines()) == 1
