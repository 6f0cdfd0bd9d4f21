"""The dashboard's patient page shows what `hiplevel report --patient` shows, the programme's
adherence included (the same report code renders both)."""
from host import store
from host.session import programme as pg

TOML = """
sessions_per_week = 3

[[item]]
exercise = "hip-dip"
stance = "left"
reps = 8
feedback = "faded"
full_sessions = 0
fade_sessions = 2
"""


def test_patient_page_shows_the_programme_sessions_against_the_prescription(ann, clinic_db):
    db, ids = clinic_db
    page = ann.get(f"/patients/{ids['p1']}")
    assert page.status_code == 200 and "sessions done vs prescribed" not in page.text  # no programme run yet
    conn = store.connect(db)
    try:
        stored = pg.save(conn, "P-001", pg.from_toml(TOML))
        run, _ = pg.next_run(conn, stored)
        step = pg.steps(stored.programme, run.number)[0]
        pg.record_step(conn, run.id, step, None, None, 8, 4)
        pg.record_pain(conn, run.id, 1, 2)
        pg.complete_run(conn, run.id)
        conn.commit()
        page = ann.get(f"/patients/{ids['p1']}")
        assert page.status_code == 200
        assert "sessions done vs prescribed" in page.text and "faded (50 % cued)" in page.text
        week = pg.adherence(conn, "P-001")["weeks"][-1]["week"]
        assert week in page.text
    finally:
        conn.close()
