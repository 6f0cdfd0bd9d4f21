"""The programme model, its TOML form and its versioned storage, on real SQLite files."""
import sqlite3

import pytest

from host import store
from host.session import programme as pg

TOML = """
sessions_per_week = 3
notes = "Slow and steady."

[[item]]
exercise = "hip-dip"
stance = "both"
sets = 2
reps = 8
threshold_deg = 6
rest_s = 20
feedback = "faded"
full_sessions = 2
fade_sessions = 4
notes = "Lift the hip back up."

[[item]]
exercise = "single-leg-squat"
stance = "right"
reps = 5
threshold_left_deg = 4.5
feedback = "bandwidth"
bandwidth_deg = 3

[[item]]
exercise = "keep-level"
hold_s = 30
"""


def test_toml_round_trip_keeps_every_value():
    p = pg.from_toml(TOML)
    assert [i.exercise for i in p.items] == ["hip-dip", "single-leg-squat", "keep-level"]
    a, b, c = p.items
    assert (a.threshold_left_deg, a.threshold_right_deg, a.sides, a.sets, a.reps) == (6.0, 6.0, ("left", "right"), 2, 8)
    assert (b.threshold_left_deg, b.threshold_right_deg, b.bandwidth_deg) == (4.5, 5.0, 3.0)
    assert c.held and c.reps == 0 and c.hold_s == 30.0
    again = pg.from_toml(pg.to_toml(p, header="for P-017"))
    assert again == p
    assert pg.to_toml(again).count("[[item]]") == 3


def test_steps_order_sides_sets_and_rest():
    steps = pg.steps(pg.from_toml(TOML), session_number=1)
    assert [(s.item, s.stance, s.set_number) for s in steps] == [
        (1, "left", 1), (1, "left", 2), (1, "right", 1), (1, "right", 2), (2, "right", 1), (3, "left", 1)]
    assert [s.last_of_item for s in steps] == [False, False, False, True, True, True]
    assert steps[0].rest_s == 20 and steps[-1].rest_s == 0
    assert steps[0].cfg.set_reps == 8 and steps[4].cfg.feedback == "bandwidth"
    assert steps[5].hold_s == 30 and steps[5].reps == 0


def test_faded_schedule_over_sessions():
    item = pg.from_toml(TOML).items[0]  # 100 % for 2 sessions, then down to 0 over 4
    assert [item.cue_share(n) for n in range(1, 8)] == [1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    cfg = item.exercise_config("left", 4)
    assert (cfg.fade_start, cfg.fade_end, cfg.set_reps) == (0.5, 0.5, 8)
    assert pg.from_toml(TOML).items[1].cue_share(9) == 1.0  # not faded


@pytest.mark.parametrize("change, words", [
    ('exercise = "hip-dip"', "item 1 (hip-dip): unknown key 'colour'"),
    ('exercise = "moonwalk"', "unknown exercise 'moonwalk'"),
    ('exercise = "hip-dip"\nthreshold_deg = 30', "threshold_left_deg must be 2 to 15 degrees, not 30"),
    ('exercise = "hip-dip"\nreps = "ten"', "reps must be a whole number"),
    ('exercise = "hip-dip"\nfeedback = "bandwidth"', "bandwidth feedback is for exercises that keep"),
    ('exercise = "keep-level"\nreps = 10', "keep-level counts no reps; give hold_s"),
    ('exercise = "hip-dip"\nstance = "middle"', "stance must be left, right or both"),
])
def test_bad_programmes_get_one_sentence(change, words):
    extra = "\ncolour = 'red'" if "colour" in words else ""
    with pytest.raises(pg.ProgrammeError) as e:
        pg.from_toml(f"[[item]]\n{change}{extra}\n")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_not_toml_and_empty():
    with pytest.raises(pg.ProgrammeError, match="not valid TOML"):
        pg.from_toml("[[item]\nexercise = ")
    with pytest.raises(pg.ProgrammeError, match="at least one item"):
        pg.from_toml("notes = 'x'\n")


def test_describe_in_plain_words():
    text = pg.describe(pg.from_toml(TOML), version=2, session_number=4)
    assert "Programme version 2: 3 items, 3 sessions a week." in text
    assert "1. hip-dip, standing on each leg (left first): 2 sets of 8 reps, threshold 6 deg" in text
    assert "(session 4: 50 % of reps)" in text
    assert "3. keep-level, standing on the left leg: 1 set of 30 s hold" in text


def test_versions_runs_steps_and_pain_in_the_store(db):  # on SQLite and PostgreSQL (tests/conftest.py)
    conn = store.connect(db, create=True)
    p = pg.from_toml(TOML)
    v1 = pg.save(conn, "P-017", p)
    p.items[0].reps = 10
    v2 = pg.save(conn, "P-017", p)
    conn.commit()
    assert (v1.version, v2.version) == (1, 2)
    assert pg.load(conn, "P-017").programme.items[0].reps == 10
    assert pg.load(conn, "P-017", version=1).programme.items[0].reps == 8
    assert pg.load(conn, "P-404") is None
    assert [v for v, _ in pg.versions(conn, "P-017")] == [1, 2]

    run, resumed = pg.next_run(conn, v2)
    assert not resumed and run.number == 1
    steps = pg.steps(p, run.number)
    pg.record_step(conn, run.id, steps[0], None, 1, 10, 10)
    pg.record_pain(conn, run.id, 1, 6)
    pg.record_pain(conn, run.id, 1, 3)  # the patient changed the answer: the last one stands
    pg.record_step(conn, run.id, steps[0], None, 1, 10, 9)  # a step recorded again replaces its row
    assert pg.step_rows(conn, run.id)[0]["cued_reps"] == 9 and len(pg.step_rows(conn, run.id)) == 1
    with pytest.raises(pg.ProgrammeError, match="0 to 10"):
        pg.record_pain(conn, run.id, 1, 11)
    conn.commit()
    conn.close()

    conn = store.connect(db)  # a new process resumes the unfinished run
    again, resumed = pg.next_run(conn, pg.load(conn, "P-017"))
    assert resumed and again.id == run.id and again.done_steps == {0} and again.pain == {1: 3}
    pg.complete_run(conn, again.id)
    third, resumed = pg.next_run(conn, pg.load(conn, "P-017"))
    assert not resumed and third.number == 2
    conn.commit()
    with pytest.raises(store.DB_ERRORS):  # the schema refuses a pain rating off the scale
        conn.execute("INSERT INTO pain_ratings VALUES (?, 1, 12, 'x')", (third.id,))
    conn.close()


def test_old_database_is_migrated(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    store.migrate(conn, migrations=store.MIGRATIONS[:3])  # the schema before the programme tables
    conn.close()
    conn = store.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    pg.save(conn, "P-1", pg.from_toml(TOML))
    conn.close()


def test_adherence_per_week_and_schedule_in_force(db):
    """Three programme sessions over three weeks (one skipped week between), the third unfinished:
    the weeks, the prescription, each session's faded cue share, reps and pain; then as HTML."""
    from host.report.html import patient_report
    conn = store.connect(db, create=True)
    stored = pg.save(conn, "P-3", pg.from_toml(TOML))
    days = ["2026-11-02T09:00:00Z", "2026-11-04T09:00:00Z", "2026-11-18T09:00:00Z"]
    for k, day in enumerate(days):
        run, _ = pg.next_run(conn, stored)
        conn.execute("UPDATE programme_runs SET started_utc = ? WHERE id = ?", (day, run.id))
        steps = pg.steps(stored.programme, run.number)
        pg.record_step(conn, run.id, steps[0], None, None, 8, 8 - 2 * k)
        if k < 2:
            pg.record_pain(conn, run.id, 1, 4 - k)
            pg.complete_run(conn, run.id)
    conn.commit()
    a = pg.adherence(conn, "P-3")
    assert a["weeks"] == [{"week": "2026-W45", "completed": 2, "unfinished": 0, "prescribed": 3},
                          {"week": "2026-W46", "completed": 0, "unfinished": 0, "prescribed": 3},
                          {"week": "2026-W47", "completed": 0, "unfinished": 1, "prescribed": 3}]
    first_items = [r["items"][0] for r in a["runs"]]
    # faded: 2 full sessions, then down over 4: session 3 has 75 % of reps cued
    assert [(i["cue_share"], i["reps"], i["cued_reps"], i["pain"]) for i in first_items] == [
        (1.0, 8, 8, 4), (1.0, 8, 6, 3), (0.75, 8, 4, None)]
    assert [r["items"][1]["done"] for r in a["runs"]] == [False] * 3
    page = patient_report("P-3", store.progress(conn, "P-3"), a)
    assert "sessions done vs prescribed" in page and "2026-W46" in page and "faded (75 % cued)" in page
    assert pg.adherence(conn, "P-404") == {"weeks": [], "runs": []}
    conn.close()
