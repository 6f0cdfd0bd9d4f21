"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through the system
chromedriver (no driver or browser download: the driver path is given, so Selenium Manager never
runs), against a real `hiplevel serve` on loopback, while the simulated sensor (a process on a real
pseudo-terminal) streams into `hiplevel run`, which records into the same database. Signs in, opens
a patient and a session, watches the live session update, and checks the screenshots."""
import io
import shutil
import subprocess
import time

import pytest

from host import store
from tests.server.test_security import free_port
from tests.support.clinic import PASSWORDS
from tests.support.simproc import ROOT, Sim, hiplevel

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
                                 reason="needs Debian's chromium and chromium-driver (make test installs them)")]


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_download(*_a, **_k):
        raise AssertionError("Selenium Manager was asked for a driver (it would download one)")
    monkeypatch.setattr(SeleniumManager, "binary_paths", no_download)
    monkeypatch.setenv("SE_OFFLINE", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--metrics-recording-only",
              f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def server(clinic_db):
    port = free_port()
    proc = subprocess.Popen(hiplevel("serve", "--db", clinic_db[0], "--port", port), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "dashboard on" in proc.stdout.readline()
    time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def check_screenshot(driver, path, min_colours=8):
    """Saved, not blank: many distinct colours and a good share of non-white pixels."""
    from PIL import Image
    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    assert img.size[0] >= 800 and len(colours) >= min_colours, path
    non_white = sum(n for n, c in colours if c != (255, 255, 255)) / (img.size[0] * img.size[1])
    assert non_white > 0.05, (path, non_white)
    return img


def wait_for(cond, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def open_live_page(d, server, patient: str, timeout_s: float):
    """Wait until the patient's session shows under Live now, open it; the live page's root element."""
    from selenium.webdriver.common.by import By

    def live_link():
        d.get(server + "/live")
        return [a for a in d.find_elements(By.CSS_SELECTOR, "a.live-link") if a.text == patient]
    wait_for(live_link, timeout_s, f"{patient}'s session to show under Live now")[0].click()
    return wait_for(lambda: d.find_elements(By.ID, "live"), 10, "the live page")[0]


def sign_in_browser(d, server):
    from selenium.webdriver.common.by import By
    d.get(server + "/")
    assert d.current_url.endswith("/signin")  # not signed in: sent to the form
    d.find_element(By.ID, "username").send_keys("ann")
    d.find_element(By.ID, "password").send_keys(PASSWORDS["ann"])
    d.find_element(By.ID, "signin").click()
    wait_for(lambda: d.find_elements(By.ID, "patients"), 20, "the patient list")


def test_sign_in_open_a_patient_and_watch_a_live_session(browser, server, clinic_db, tmp_path):
    from selenium.webdriver.common.by import By
    db, ids = clinic_db
    conn = store.connect(db)
    store.assign_patient(conn, "P-WEB", "North")
    conn.close()
    d = browser
    sign_in_browser(d, server)
    names = [a.text for a in d.find_elements(By.CSS_SELECTOR, "a.patient")]
    assert "P-001" in names and "P-002" not in names
    check_screenshot(d, tmp_path / "patients.png")
    d.find_element(By.LINK_TEXT, "P-001").click()
    wait_for(lambda: d.find_elements(By.ID, "progress"), 20, "the patient page")
    assert d.find_elements(By.CSS_SELECTOR, "#progress svg") and d.find_elements(By.CSS_SELECTOR, "a.session")
    check_screenshot(d, tmp_path / "patient.png")
    d.find_elements(By.CSS_SELECTOR, "a.session")[0].click()
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#report svg"), 30, "the session report")
    assert "Block 1" in d.find_element(By.ID, "report").text
    check_screenshot(d, tmp_path / "session.png")

    # a station records a simulated session into the same database
    with Sim("--drops", "7,3,7,3", "--speed", 2, "--seed", 4) as sim:
        run = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--headless", "--mute", "--patient", "P-WEB",
                                        "--db", db, "--calibration", "standing"), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            root = open_live_page(d, server, "P-WEB", 30)
            points = lambda: int(root.get_attribute("data-points") or 0)  # noqa: E731
            wait_for(lambda: points() > 200, 40, "angle points")
            first = (points(), int(root.get_attribute("data-frames")))
            wait_for(lambda: int(root.get_attribute("data-reps") or 0) >= 1, 60, "a rep")
            assert points() > first[0] and int(root.get_attribute("data-frames")) > first[1]  # it updates
            assert d.find_element(By.ID, "link").text == "connected"
            assert d.find_element(By.ID, "angle").text.endswith("°")
            assert d.find_element(By.ID, "delay").text.endswith(" ms")
            # the plot has drawn the trace (dark blue or cue orange pixels on the canvas)
            drawn = d.execute_script(
                "const c = document.getElementById('plot'), p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "let n = 0; for (let i = 0; i < p.length; i += 4) if (p[i + 3] > 0 && p[i] < 120) n++; return n;")
            assert drawn > 300
            check_screenshot(d, tmp_path / "live.png")
            delay_ms = int(d.find_element(By.ID, "delay").text.split()[0])
            print(f"live delay shown in the browser: {delay_ms} ms")
            assert 0 < delay_ms < 5000
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err
    wait_for(lambda: "ended" in d.find_element(By.ID, "link").text, 10, "the end of the block")
    # afterwards the session is in the patient's history
    d.get(server + "/")
    d.find_element(By.LINK_TEXT, "P-WEB").click()
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "a.session"), 20, "P-WEB's session")
    assert "complete" in d.find_element(By.ID, "sessions").text
    d.find_element(By.ID, "signout").click()
    wait_for(lambda: d.current_url.endswith("/signin"), 10, "signing out")
    d.get(server + "/")
    assert d.current_url.endswith("/signin")


def test_a_home_session_paired_in_the_browser_is_watched_live_and_then_in_the_history(
        browser, server, clinic_db, tmp_path):
    """The therapist pairs P-HOME's computer from the patient page; `hiplevel run --share-live` on
    that computer (its own SQLite file) streams into the live view, and the finished session uploads
    by itself into the patient's history."""
    import os
    import re
    from selenium.webdriver.common.by import By
    db, _ = clinic_db
    conn = store.connect(db)
    store.assign_patient(conn, "P-HOME", "North")
    conn.close()
    d = browser
    sign_in_browser(d, server)
    d.find_element(By.LINK_TEXT, "P-HOME").click()
    wait_for(lambda: d.find_elements(By.ID, "devices"), 20, "the patient page")
    d.find_element(By.ID, "pair").click()
    code = wait_for(lambda: d.find_elements(By.ID, "pair-code"), 20, "the pairing code")[0].text
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert d.find_element(By.ID, "pair-command").text == f"hiplevel pair {server} {code}"
    check_screenshot(d, tmp_path / "pair.png", min_colours=4)
    env = {**os.environ, "HIPLEVEL_PAIRING": str(tmp_path / "pairing.json")}
    r = subprocess.run(hiplevel("pair", server, code, "--name", "P-HOME's laptop"), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "patient P-HOME" in r.stdout, r.stdout + r.stderr
    home = tmp_path / "home.sqlite"
    with Sim("--drops", "7,3,7,3", "--speed", 2, "--seed", 6) as sim:
        run = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--headless", "--mute", "--db", home,
                                        "--calibration", "standing", "--share-live"), cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            root = open_live_page(d, server, "P-HOME", 40)
            frames = lambda: int(root.get_attribute("data-frames") or 0)  # noqa: E731
            wait_for(lambda: frames() > 0, 30, "the home session's frames")
            first = frames()
            wait_for(lambda: frames() > first, 30, "more frames")  # it updates as the home computer sends
            check_screenshot(d, tmp_path / "home-live.png")
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert run.returncode == 0, err
    assert re.search(r"Session \d+ uploaded to the clinic", out), out
    d.get(server + "/")
    d.find_element(By.LINK_TEXT, "P-HOME").click()
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "a.session"), 20, "P-HOME's session")
    assert "complete" in d.find_element(By.ID, "sessions").text
    assert "P-HOME's laptop" in d.find_element(By.ID, "device-list").text
    check_screenshot(d, tmp_path / "home-history.png")
