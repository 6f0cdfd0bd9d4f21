"""`hiplevel today` end to end: the simulated patient (`hiplevel sim --programme`) follows a whole
programme over a real pseudo-terminal while the real `hiplevel today` process leads it; the store is
then read back. Four items vary sides, sets, feedback (every rep, bandwidth, faded) and reps vs hold."""
import json
import subprocess

from host import store
from host.session import programme as pg
from tests.support.simproc import ROOT, Sim, hiplevel

PROGRAMME = """
notes = "Stand tall."

[[item]]
exercise = "hip-dip"
stance = "both"
reps = 3
rest_s = 3
notes = "Lift the hip back up."

[[item]]
exercise = "single-leg-squat"
stance = "right"
reps = 2
rest_s = 2
feedback = "bandwidth"

[[item]]
exercise = "keep-level"
hold_s = 6
rest_s = 2

[[item]]
exercise = "hip-dip"
stance = "left"
sets = 2
reps = 2
threshold_deg = 4
feedback = "faded"
full_sessions = 0
fade_sessions = 2
rest_s = 2
"""
STEPS = 6  # hip dip left + right, squat, hold, hip dip 2 sets


def today(db, port, *extra, timeout=120):
    return subprocess.run(hiplevel("today", "--serial", port, "--patient", "P-9", "--db", db, "--headless",
                                   "--voice", "off", "--mute", *extra),
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def setup(tmp_path):
    db, f = tmp_path / "s.sqlite", tmp_path / "p.toml"
    f.write_text(PROGRAMME)
    r = subprocess.run(hiplevel("programme", "import", f, "--patient", "P-9", "--db", db), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return db, f


def test_a_whole_programme(tmp_path):
    db, f = setup(tmp_path)
    pain = tmp_path / "pain.txt"
    pain.write_text("3\n\n5\n2\n")
    ev = tmp_path / "ev.jsonl"
    with Sim("--programme", f, "--speed", 4, "--seed", 3) as sim:
        r = today(db, sim.port, "--pain-from", pain, "--events", ev)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout.splitlines()
    # the instructions, in order (counts and rests between them)
    said = [line for line in out if line.endswith(("hip dips.", "squats.", "seconds.", "legs.")) or "of two." in line]
    assert said == ["Left leg: three hip dips.", "Rest, three seconds.", "Switch legs.", "Right leg: three hip dips.",
                    "Rest, three seconds.", "Right leg: two single leg squats.", "Rest, two seconds.",
                    "Left leg: keep level for six seconds.", "Rest, two seconds.",
                    "Left leg: two hip dips. Set one of two.", "Rest, two seconds.",
                    "Left leg: two hip dips. Set two of two."]
    assert out.index("Stand still.") < out.index("Bend forward slowly.") < out.index("Left leg: three hip dips.")
    assert "Lift the hip back up." in out and "Notes: Stand tall." in out
    assert [line for line in out if line.startswith("  Rep ")] == (
        ["  Rep 1 of 3", "  Rep 2 of 3", "  Rep 3 of 3"] * 2 + ["  Rep 1 of 2", "  Rep 2 of 2"] * 3)
    assert "Pain 3/10, noted." in out and "Pain: no rating." in out and "Pain 2/10, noted." in out
    assert "Today's session is complete." in out and out.count("Well done! That's all for today.") == 1
    assert ("1. hip-dip: left leg 3 reps (3 past the threshold" in r.stdout
            and "3. keep-level: left leg 6 s held; pain 5/10." in r.stdout)

    events = [json.loads(line) for line in open(ev)]
    steps = [e for e in events if e["event"] == "programme_step"]
    assert [(e["item"], e["stance"], e["set"]) for e in steps] == [
        (1, "left", 1), (1, "right", 1), (2, "right", 1), (3, "left", 1), (4, "left", 1), (4, "left", 2)]
    # faded (no full sessions, down to none over 2): session 1 cues half the reps audibly
    assert [e["cue_share"] for e in steps] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    last_cues = [e for e in events if e["event"] == "cue_on" and e["t"] > steps[-2]["t"]]
    assert [e["audible"] for e in last_cues] == [True, False, True, False]
    conn = store.connect(db)
    (run,) = pg.runs(conn, "P-9")
    assert run.completed_utc and run.number == 1 and run.done_steps == set(range(STEPS))
    assert run.pain == {1: 3, 3: 5, 4: 2}
    rows = pg.step_rows(conn, run.id)
    assert [r["reps"] for r in rows] == [3, 3, 2, 0, 2, 2]
    (session,) = store.list_sessions(conn, "P-9")
    assert [b.exercise for b in session.blocks] == ["hip-dip", "hip-dip", "single-leg-squat", "keep-level",
                                                    "hip-dip", "hip-dip"]
    assert [b.settings["programme"]["item"] for b in session.blocks] == [1, 1, 2, 3, 4, 4]
    assert [r["block_number"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["session_id"] == session.id for r in rows)
    # rest: no reps and no cue were recorded between a step's last rep and the next step
    for b in session.blocks:
        reps = store.reps(conn, b.id)
        planned = b.settings["exercise"]["set_reps"]
        assert len(reps) == planned, (b.number, len(reps), planned)
    conn.close()


def test_interrupted_session_resumes_where_it_stopped(tmp_path):
    db, f = setup(tmp_path)
    with Sim("--programme", f, "--speed", 4, "--steps", 2) as sim:  # the patient stops after two sets
        first = today(db, sim.port, "--pain-from", "/dev/null")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Today's session stopped before the end; `hiplevel today` carries on from there next time." in first.stdout
    with Sim("--programme", f, "--speed", 4, "--from-step", 2) as sim:
        second = today(db, sim.port, "--pain-from", "/dev/null")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "programme version 1, session 1 (resumed after 2 of 6 sets)." in second.stdout
    assert "Left leg: three hip dips." not in second.stdout
    assert second.stdout.index("Right leg: two single leg squats.") < second.stdout.index("Left leg: keep level")
    conn = store.connect(db)
    (run,) = pg.runs(conn, "P-9")
    assert run.completed_utc and run.done_steps == set(range(6))
    rows = pg.step_rows(conn, run.id)
    assert len({r["session_id"] for r in rows}) == 2 and not run.pain
    conn.close()
