"""The programme editor in a real browser (Debian's headless Chromium via Selenium, as
tests/server/test_browser.py): sign in, open a patient, add an item with the page's script, change a
threshold, save; the new version in the store holds what was typed, and the page's screenshot is
checked."""
import pytest

from host import store
from host.session import programme as pg
from tests.server.test_browser import browser, check_screenshot, pytestmark, server, wait_for  # noqa: F401
from tests.support.clinic import PASSWORDS


def test_edit_a_programme_in_the_browser(browser, server, clinic_db, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    db, _ = clinic_db
    conn = store.connect(db)
    try:
        store.assign_patient(conn, "P-EDIT", "North")
        pg.save(conn, "P-EDIT", pg.Programme(items=[pg.Item(exercise="hip-dip", reps=8)]))
        before = [v for v, _ in pg.versions(conn, "P-EDIT")]
    finally:
        conn.close()
    d = browser
    d.get(server + "/signin")
    d.find_element(By.ID, "username").send_keys("ann")
    d.find_element(By.ID, "password").send_keys(PASSWORDS["ann"])
    d.find_element(By.ID, "signin").click()
    wait_for(lambda: d.find_elements(By.ID, "patients"), 20, "the patient list")
    d.find_element(By.LINK_TEXT, "P-EDIT").click()
    wait_for(lambda: d.find_elements(By.ID, "edit-programme"), 20, "the patient page")
    assert "Version 1" in d.find_element(By.ID, "programme").text
    d.find_element(By.ID, "edit-programme").click()
    wait_for(lambda: d.find_elements(By.ID, "editor"), 20, "the editor")
    url = d.current_url
    d.find_element(By.ID, "add").click()  # the page's script adds the row: no round trip
    rows = wait_for(lambda: [r for r in d.find_elements(By.CSS_SELECTOR, "#items tbody tr.item")] if len(
        d.find_elements(By.CSS_SELECTOR, "#items tbody tr.item")) == 2 else None, 10, "a second row")
    assert d.current_url == url and rows[1].find_element(By.CSS_SELECTOR, "td.n").text == "2"
    Select(rows[1].find_element(By.NAME, "exercise")).select_by_visible_text("single-leg-squat")
    Select(rows[1].find_element(By.NAME, "stance")).select_by_visible_text("right")
    thr = rows[0].find_element(By.NAME, "threshold_left_deg")
    thr.clear()
    thr.send_keys("7.5")
    check_screenshot(d, tmp_path / "editor.png")
    d.find_element(By.ID, "save").click()
    wait_for(lambda: d.find_elements(By.ID, "saved"), 20, "the saved version")
    assert d.find_element(By.ID, "saved").text == f"Saved as version {before[-1] + 1}."
    check_screenshot(d, tmp_path / "saved.png")
    conn = store.connect(db)
    try:
        s = pg.load(conn, "P-EDIT")
    finally:
        conn.close()
    assert s.version == before[-1] + 1
    a, b = s.programme.items
    assert (a.exercise, a.reps, a.threshold_left_deg, a.threshold_right_deg) == ("hip-dip", 8, 7.5, 5.0)
    assert (b.exercise, b.stance, b.reps) == ("single-leg-squat", "right", 10)
