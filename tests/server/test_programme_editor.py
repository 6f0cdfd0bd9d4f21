"""The dashboard's programme editor and "add a patient", through the real app (Starlette's
TestClient) on both backends: a save is a new version in the store holding exactly what was typed;
a mistake is a sentence next to the form with what was typed kept and nothing saved; the rows'
buttons work without JavaScript; TOML in (import) and out (download); another clinic's patient is
not found; forged CSRF tokens, injection and traversal strings in every new parameter; the body cap."""
import html
import itertools
import tomllib
from dataclasses import asdict

import pytest

from host import store
from host.server import programmes as web
from host.session import programme as pg
from tests.server.conftest import csrf_of
from tests.server.test_security import BAD, table_counts

_labels = itertools.count(1)


@pytest.fixture
def patient(clinic_db):
    """A fresh patient of clinic North (ann's): (id, label)."""
    db, _ = clinic_db
    label = f"P-ED-{next(_labels):03d}"
    conn = store.connect(db)
    try:
        store.assign_patient(conn, label, "North")
        return store.patient_id(conn, label, create=False), label
    finally:
        conn.close()


def stored_versions(db, label):
    conn = store.connect(db)
    try:
        return [(v, pg.load(conn, label, v).programme) for v, _ in pg.versions(conn, label)]
    finally:
        conn.close()


ITEM_A = {"exercise": "hip-dip", "stance": "both", "sets": "3", web.AMOUNT: "12", "threshold_left_deg": "6.5",
          "threshold_right_deg": "4", "rest_s": "45", "feedback": "faded", "bandwidth_deg": "2",
          "full_sessions": "3", "fade_sessions": "5", "notes": "Slowly; keep the knee soft"}
ITEM_B = {"exercise": "timed-hold", "stance": "right", "sets": "2", web.AMOUNT: "40", "threshold_left_deg": "5",
          "threshold_right_deg": "7.5", "rest_s": "20", "feedback": "every-rep", "bandwidth_deg": "1.5",
          "full_sessions": "4", "fade_sessions": "4", "notes": ""}


def form_of(csrf, rows, per_week="4", notes="Evening sessions", op="save", base=None, **extra):
    """The editor's form as the page posts it: each column's fields in row order."""
    data = [("csrf", csrf), ("sessions_per_week", per_week), ("programme_notes", notes), ("op", op)]
    if base is not None:
        data.append(("base_version", str(base)))
    for r in rows:
        data += [(k, r[k]) for k in web.COLUMNS]
    return data + list(extra.items())


def post(client, path, data):
    # a list of pairs: repeated names, as a browser sends a form
    from urllib.parse import urlencode
    return client.post(path, content=urlencode(data), follow_redirects=False,
                       headers={"content-type": "application/x-www-form-urlencoded"})


def editor(ann, pid):
    page = ann.get(f"/patients/{pid}/programme")
    assert page.status_code == 200
    return page, csrf_of(page.text)


def test_every_field_of_an_item_is_in_the_form_and_comes_back_as_it_was():
    assert set(web.COLUMNS) | {"reps", "hold_s"} == {f for f in asdict(pg.Item())} | {web.AMOUNT}
    p = pg.Programme(items=[pg.Item(exercise="single-leg-squat", stance="right",
                                    sets=4, reps=7, threshold_left_deg=3.5, threshold_right_deg=9.0, rest_s=12.5,
                                    feedback="bandwidth", bandwidth_deg=1.5, full_sessions=2, fade_sessions=6,
                                    notes="12"),
                            pg.Item(exercise="timed-hold", reps=0, hold_s=35.0)], sessions_per_week=5, notes="x")
    back = web.programme_of_rows([web.item_row(i) for i in p.items], "5", "x")
    assert back == p


def test_saving_makes_a_new_version_with_exactly_the_values_typed(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    page, csrf = editor(ann, pid)
    assert "No programme yet" in page.text
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A, ITEM_B], base=0))
    assert r.status_code == 303 and r.headers["location"] == f"/patients/{pid}/programme?saved=1"
    [(v, p)] = stored_versions(db, label)
    assert v == 1 and p.sessions_per_week == 4 and p.notes == "Evening sessions"
    a, b = p.items
    assert (a.exercise, a.stance, a.sets, a.reps, a.hold_s, a.threshold_left_deg, a.threshold_right_deg, a.rest_s,
            a.feedback, a.bandwidth_deg, a.full_sessions, a.fade_sessions, a.notes) == \
        ("hip-dip", "both", 3, 12, 0.0, 6.5, 4.0, 45.0, "faded", 2.0, 3, 5, "Slowly; keep the knee soft")
    assert (b.exercise, b.stance, b.sets, b.reps, b.hold_s, b.threshold_left_deg, b.threshold_right_deg, b.rest_s,
            b.feedback, b.bandwidth_deg) == ("timed-hold", "right", 2, 0, 40.0, 5.0, 7.5, 20.0, "every-rep", 1.5)
    shown = ann.get(r.headers["location"])
    assert "Saved as version 1." in shown.text and "Version 1, saved" in shown.text
    assert "Slowly; keep the knee soft" in shown.text and 'value="6.5"' in shown.text
    # the patient page shows the programme too, and links to the editor
    home = ann.get(f"/patients/{pid}")
    assert "Version 1, saved" in home.text and f'href="/patients/{pid}/programme"' in home.text
    assert "timed-hold, standing on the right leg: 2 sets of 40 s hold" in home.text
    # a second save is version 2; version 1 stays as it was
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf_of(shown.text), [ITEM_B], per_week="2", base=1))
    assert r.status_code == 303
    versions = stored_versions(db, label)
    assert [v for v, _ in versions] == [1, 2] and versions[0][1] == p and len(versions[1][1].items) == 1


@pytest.mark.parametrize("key, value, words", [
    ("threshold_left_deg", "20", "Not saved: item 1 (hip-dip): threshold_left_deg must be 2 to 15 degrees, not 20."),
    ("sets", "three", "Not saved: item 1 (hip-dip): sets must be a whole number, not 'three'."),
    ("sets", "2.5", "Not saved: item 1 (hip-dip): sets must be a whole number, not 2.5."),
    (web.AMOUNT, "99", "Not saved: item 1 (hip-dip): reps must be 2 to 50, not 99."),
    ("rest_s", "", "Not saved: item 1 (hip-dip): rest (s) is empty; give a value."),
    ("rest_s", "inf", "Not saved: item 1 (hip-dip): rest_s must be a number, not inf."),
    ("stance", "up", "Not saved: item 1 (hip-dip): stance must be left, right or both, not 'up'."),
    ("exercise", "jumping", "Not saved: item 1 (jumping): unknown exercise 'jumping'"),
    ("feedback", "bandwidth", "Not saved: item 1 (hip-dip): bandwidth feedback is for exercises that keep the pelvis level"),
])
def test_a_mistake_is_a_sentence_next_to_the_form_and_nothing_is_saved(ann, clinic_db, patient, key, value, words):
    db, _ = clinic_db
    pid, label = patient
    _, csrf = editor(ann, pid)
    row = {**ITEM_A, key: value}
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [row, ITEM_B], base=0))
    assert r.status_code == 400 and words in html.unescape(r.text)
    assert stored_versions(db, label) == []
    # what was typed is still in the form, every row of it
    assert f'value="{value}"' in r.text or f"<option selected>{value}</option>" in r.text
    assert 'value="Slowly; keep the knee soft"' in r.text and 'value="40"' in r.text and 'value="Evening sessions"' in r.text


def test_programme_level_mistakes_and_a_stale_version_are_refused(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    _, csrf = editor(ann, pid)
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A], per_week="30", base=0))
    assert r.status_code == 400 and "Not saved: sessions_per_week must be 1 to 21, not 30." in r.text
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [], base=0))
    assert r.status_code == 400 and "Not saved: a programme needs at least one item" in r.text
    assert stored_versions(db, label) == []
    assert post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A], base=0)).status_code == 303
    # another page, opened before that save, saves its own edit: refused, its values kept
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_B], per_week="6", base=0))
    assert r.status_code == 409 and "Not saved: version 1 was saved meanwhile" in r.text and 'value="6"' in r.text
    assert [v for v, _ in stored_versions(db, label)] == [1]
    assert 'name="base_version" value="1"' in r.text  # saving again from this page now goes through
    assert post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_B], per_week="6", base=1)).status_code == 303
    assert [v for v, _ in stored_versions(db, label)] == [1, 2]


def test_the_row_buttons_work_without_javascript_and_save_nothing(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    _, csrf = editor(ann, pid)
    path = f"/patients/{pid}/programme"

    def rows_after(op, rows):
        r = post(ann, path, form_of(csrf, rows, op=op, base=0))
        assert r.status_code == 200
        return [td.split('value="', 1)[1].split('"', 1)[0]
                for td in r.text.split('<td class="amount">')[1:-1]]  # the last is the blank row's template
    assert rows_after("add", [ITEM_A]) == ["12", "10"]
    assert rows_after("remove-0", [ITEM_A, ITEM_B]) == ["40"]
    assert rows_after("up-1", [ITEM_A, ITEM_B]) == ["40", "12"]
    assert rows_after("down-0", [ITEM_A, ITEM_B]) == ["40", "12"]
    assert rows_after("down-1", [ITEM_A, ITEM_B]) == ["12", "40"]  # the last row stays last
    assert rows_after("remove-7", [ITEM_A]) == ["12"]
    assert stored_versions(db, label) == []


def test_import_and_download_toml(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    assert ann.get(f"/patients/{pid}/programme.toml").status_code == 404  # nothing to download yet
    _, csrf = editor(ann, pid)
    text = ('sessions_per_week = 2\n\n[[item]]\nexercise = "pelvic-tilt"\nstance = "left"\nreps = 6\n'
            'threshold_deg = 8\nnotes = "hold each tilt"\n')
    bad = text.replace("reps = 6", "reps = 6\nspeed = 2")
    r = post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", bad)])
    assert r.status_code == 400 and "Not imported: item 1 (pelvic-tilt): unknown key 'speed'" in html.unescape(r.text)
    assert "speed = 2" in r.text  # the pasted text is kept
    r = post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", "[[item]\n")])
    assert r.status_code == 400 and "Not imported: the programme file is not valid TOML" in r.text
    assert stored_versions(db, label) == []
    r = post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", text)])
    assert r.status_code == 303
    [(v, p)] = stored_versions(db, label)
    assert p == pg.from_toml(text) and p.items[0].threshold_right_deg == 8.0
    down = ann.get(f"/patients/{pid}/programme.toml")
    assert down.status_code == 200 and down.headers["content-disposition"] == \
        f'attachment; filename="programme-{label}-v1.toml"'
    assert pg.from_toml(down.text) == p and tomllib.loads(down.text)["sessions_per_week"] == 2
    post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A], base=1))
    assert pg.from_toml(ann.get(f"/patients/{pid}/programme.toml?version=1").text) == p
    assert pg.from_toml(ann.get(f"/patients/{pid}/programme.toml").text).items[0].exercise == "hip-dip"
    assert ann.get(f"/patients/{pid}/programme.toml?version=3").status_code == 404
    assert web.download_name('a"b/../c\r\n', 2) == "programme-a_b_.._c__-v2.toml"


def test_another_clinics_patient_is_not_found_and_nothing_is_saved(ann, clinic_db):
    db, ids = clinic_db
    _, csrf = editor(ann, ids["p1"])
    before = stored_versions(db, "P-002")
    for pid in (ids["p2"], 987654):
        for r in (ann.get(f"/patients/{pid}/programme"), ann.get(f"/patients/{pid}/programme.toml"),
                  post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A], base=0)),
                  post(ann, f"/patients/{pid}/programme", form_of(csrf, [ITEM_A], op="add")),
                  post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", pg.to_toml(
                      pg.Programme(items=[pg.Item()])))])):
            assert r.status_code == 404 and r.text == ann.get("/patients/987654").text and "P-002" not in r.text
    assert stored_versions(db, "P-002") == before


def test_forged_csrf_tokens_are_refused_and_nothing_is_saved(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    page, csrf = editor(ann, pid)
    before = table_counts(db)
    for forged in ("", "x" * 43, csrf[:-1] + ("A" if csrf[-1] != "A" else "B")):
        for path, data in ((f"/patients/{pid}/programme", form_of(forged, [ITEM_A], base=0)),
                           (f"/patients/{pid}/programme/import", [("csrf", forged), ("toml", pg.to_toml(
                               pg.Programme(items=[pg.Item()])))]),
                           ("/patients", [("csrf", forged), ("label", "P-FORGED")])):
            r = post(ann, path, data)
            assert r.status_code == 403 and "token does not match" in r.text, (path, forged)
    r = post(ann, f"/patients/{pid}/programme", [(k, v) for k, v in form_of(csrf, [ITEM_A], base=0) if k != "csrf"])
    assert r.status_code == 403
    assert stored_versions(db, label) == [] and table_counts(db) == before


@pytest.mark.parametrize("bad", BAD)
def test_injection_and_traversal_strings_in_every_new_parameter(ann, clinic_db, patient, bad):
    from urllib.parse import quote
    db, _ = clinic_db
    pid, label = patient
    _, csrf = editor(ann, pid)
    before = table_counts(db)
    for path in ("/patients/{}/programme", "/patients/{}/programme.toml"):
        r = ann.get(path.format(bad), follow_redirects=False)
        assert r.status_code in (400, 404) and label not in r.text and "root:" not in r.text, (path, bad)
    for path in ("/patients/{}/programme", "/patients/{}/programme/import"):
        r = post(ann, path.format(bad), form_of(csrf, [ITEM_A], base=0))
        assert r.status_code in (400, 404, 405), (path, bad, r.status_code)
    r = ann.get(f"/patients/{pid}/programme.toml?version={quote(bad)}")
    assert r.status_code == 404 and "[[item]]" not in r.text

    def latest():
        return max((v for v, _ in stored_versions(db, label)), default=0)
    # in every field of the form: refused with a sentence, or (" 1", "0" where a count may be 0) the
    # number it is, stored as typed
    for key in [k for k in web.COLUMNS if k != "notes"] + ["sessions_per_week"]:
        rows = [{**ITEM_A, key: bad}] if key in web.COLUMNS else [ITEM_A]
        r = post(ann, f"/patients/{pid}/programme",
                 form_of(csrf, rows, per_week=bad if key == "sessions_per_week" else "4", base=latest()))
        assert "<script>alert" not in r.text  # shown escaped, never as markup
        if r.status_code == 303:
            p = stored_versions(db, label)[-1][1]
            got = p.sessions_per_week if key == "sessions_per_week" else getattr(p.items[0], "reps" if key == web.AMOUNT else key)
            assert got == pg.value_of_text(bad) and isinstance(pg.value_of_text(bad), int), (key, bad)
        else:
            assert r.status_code == 400 and "Not saved:" in r.text, (key, bad, r.status_code)
    for key in ("op", "base_version"):
        data = [(k, v) for k, v in form_of(csrf, [ITEM_A], base=latest()) if k != key] + [(key, bad)]
        r = post(ann, f"/patients/{pid}/programme", data)
        assert r.status_code in ((200,) if key == "op" else (303, 409)) and "<script>alert" not in r.text, (key, bad)
    r = post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", bad)])
    assert r.status_code == 400 and "Not imported:" in r.text and "<script>alert" not in r.text
    assert table_counts(db) == before
    # notes are free text: kept exactly, as data
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, [{**ITEM_A, "notes": bad}], notes=bad, base=latest()))
    assert r.status_code == 303
    p = stored_versions(db, label)[-1][1]
    assert p.notes == bad.strip() and p.items[0].notes == bad.strip()
    assert "<script>alert" not in ann.get(f"/patients/{pid}/programme").text
    r = ann.get(f"/patients/{pid}/programme?saved={quote(bad)}")
    assert r.status_code == 200 and "Saved as version" not in r.text and "Version " in r.text
    # as a new patient's label: a printable label is stored as typed (and shown escaped), or refused
    r = post(ann, "/patients", [("csrf", csrf), ("label", bad + label)])
    assert r.status_code == 303
    conn = store.connect(db)
    try:
        new = store.patient_id(conn, (bad + label).strip(), create=False)
    finally:
        conn.close()
    assert r.headers["location"] == f"/patients/{new}"
    assert "<script>alert" not in ann.get("/").text and "<script>alert" not in ann.get(r.headers["location"]).text
    counts = table_counts(db)
    assert counts["patients"] == before["patients"] + 1 and counts["sessions"] == before["sessions"]


def test_adding_a_patient(ann, clinic_db):
    db, ids = clinic_db
    home = ann.get("/")
    csrf = csrf_of(home.text)
    assert 'id="add-patient"' in home.text
    label = f"P-NEW-{next(_labels):03d}"
    r = post(ann, "/patients", [("csrf", csrf), ("label", f"  {label} ")])
    conn = store.connect(db)
    try:
        pid = store.patient_id(conn, label, create=False)
        assert store.patient_of_clinic(conn, pid, store.clinic_id(conn, "North")) == label
    finally:
        conn.close()
    assert r.status_code == 303 and r.headers["location"] == f"/patients/{pid}"
    assert label in ann.get("/").text and ann.get(f"/patients/{pid}").status_code == 200
    # adding it again just opens it
    r = post(ann, "/patients", [("csrf", csrf), ("label", label)])
    assert r.status_code == 303 and r.headers["location"] == f"/patients/{pid}"
    # a label of another clinic, and one recorded by a station but in no clinic: refused alike,
    # without a word about where it is
    conn = store.connect(db)
    try:
        store.patient_id(conn, "P-STATION-ONLY")
    finally:
        conn.close()
    before = table_counts(db)
    words = []
    for taken in ("P-002", "P-STATION-ONLY"):
        r = post(ann, "/patients", [("csrf", csrf), ("label", taken)])
        assert r.status_code == 400 and "South" not in r.text and "Not added: the label" in r.text
        assert f'value="{taken}"' in r.text  # kept in the field
        words.append(r.text.split('id="message" role="alert">', 1)[1].split("</p>", 1)[0].replace(taken, "X"))
    assert words[0] == words[1]
    for bad, why in (("", "1 to 40 characters"), ("x" * 41, "1 to 40 characters"),
                     ("P-\x01", "control characters")):
        r = post(ann, "/patients", [("csrf", csrf), ("label", bad)])
        assert r.status_code == 400 and "Not added: a patient label" in r.text and why in r.text
    assert table_counts(db) == before
    conn = store.connect(db)
    try:
        assert store.patient_of_clinic(conn, ids["p2"], store.clinic_id(conn, "South")) == "P-002"  # unmoved
    finally:
        conn.close()


def test_the_editor_has_a_higher_body_cap_than_the_other_forms(ann, clinic_db, patient):
    db, _ = clinic_db
    pid, label = patient
    _, csrf = editor(ann, pid)
    rows = [{**ITEM_A, "notes": "n" * 500} for _ in range(30)]  # the largest programme there is
    data = form_of(csrf, rows, notes="m" * 500, base=0)
    from urllib.parse import urlencode
    assert 16 * 1024 < len(urlencode(data)) < web.MAX_BODY_BYTES
    assert post(ann, f"/patients/{pid}/programme", data).status_code == 303
    [(_, p)] = stored_versions(db, label)
    assert len(p.items) == 30 and p.items[29].notes == "n" * 500
    r = post(ann, f"/patients/{pid}/programme", form_of(csrf, rows, notes="m" * web.MAX_BODY_BYTES, base=1))
    assert r.status_code == 413
    r = post(ann, f"/patients/{pid}/programme/import", [("csrf", csrf), ("toml", "#" * web.MAX_BODY_BYTES)])
    assert r.status_code == 413
    r = post(ann, "/patients", [("csrf", csrf), ("label", "x" * 20000)])
    assert r.status_code == 413  # the other forms keep the 16 KB cap
    assert [v for v, _ in stored_versions(db, label)] == [1]
