"""The dashboard's patient page shows what `hiplevel report --patient` shows, the programme's
adherence included (the same report code renders both)."""
from datetime import datetime, timezone

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


def test_a_block_whose_station_went_silent_is_not_shown_as_recording_now(ann, clinic_db):
    """A station killed mid-block never writes the block's end. Its block is listed apart, "stopped
    without an end", with when its data stopped; the block a working station records (the real
    recorder stamps each commit) is listed as recording now."""
    db, ids = clinic_db
    from tests.support.clinic import record_session
    conn = store.connect(db)
    store.assign_patient(conn, "P-KILLED", "North")
    sid = store.insert_session(conn, "P-KILLED", "station 4", "test")
    started = "2026-01-05T09:00:00Z"
    from host.processing.pipeline import PipelineConfig
    from host.sinks.recorder import settings_of
    bid = store.insert_block(conn, sid, settings_of(PipelineConfig()), started)
    conn.execute("UPDATE blocks SET frame_count = 40, last_data_utc = ? WHERE id = ?", ("2026-01-05T09:03:10Z", bid))
    # the recorder's own stamp: a session it records and closes has its last commit's time
    rec_sid = record_session(db, "P-001", seed=11)
    rec_block = store.get_session(conn, rec_sid).blocks[0].id
    stamp = conn.execute("SELECT last_data_utc FROM blocks WHERE id = ?", (rec_block,)).fetchone()[0]
    assert abs((datetime.fromisoformat(stamp.replace("Z", "+00:00")) - datetime.now(timezone.utc)).total_seconds()) < 120
    # the same block, open now with fresh data, and the silent one
    conn.execute("UPDATE sessions SET ended_utc = NULL WHERE id = ?", (rec_sid,))
    conn.execute("UPDATE blocks SET end_json = NULL WHERE id = ?", (rec_block,))
    conn.close()
    try:
        live = {b["block_id"]: b for b in ann.get("/api/live").json()["live"]}
        assert live[bid]["silent"] and live[bid]["last_data_utc"] == "2026-01-05T09:03:10Z"
        assert not live[rec_block]["silent"]
        page = ann.get("/live").text
        now_part, silent_part = page.split("Stopped without an end")
        assert f"/live/{rec_block}" in now_part and f"/live/{bid}" not in page
        assert "P-KILLED" in silent_part and store.local_time("2026-01-05T09:03:10Z") in silent_part
        assert f"/sessions/{sid}" in silent_part
        banner = ann.get("/").text.split('class="live-now"')[1].split("</p>")[0]
        assert "P-001" in banner and "P-KILLED" not in banner
    finally:  # the package's other tests share this database: end what this test opened
        conn = store.connect(db)
        conn.execute("UPDATE sessions SET ended_utc = ? WHERE id IN (?, ?)", (store.utc_now(), sid, rec_sid))
        conn.close()
