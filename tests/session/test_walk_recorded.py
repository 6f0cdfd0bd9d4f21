"""A recorded walk: `hiplevel sim --exercise walk` on a real pty, `hiplevel run --exercise walk`
recording into a real database, then `replay`, `export` and `report` (session and patient progress)
as processes: the steps recorded live come back field for field, in the CSV and on the pages."""
import csv
import json
import subprocess

import pytest
from tests.support.simproc import ROOT, Sim, hiplevel, run_host

from host import store


def cli(*args, timeout=120):
    return subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    d = tmp_path_factory.mktemp("walk")
    db, ev = d / "s.sqlite", d / "live.jsonl"
    with Sim("--exercise", "walk", "--gait", "trendelenburg", "--weak-side", "right", "--steps", 16,
             "--speed", 6, "--seed", 8) as sim:
        r = run_host("--serial", sim.port, "--exercise", "walk", "--headless", "--mute", "--db", db,
                     "--patient", "W1", "--events", ev)
    assert r.returncode == 0 and "Recorded as session" in r.stdout, r.stdout + r.stderr
    events = [json.loads(x) for x in open(ev)]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) >= 12 and any(s["cued"] for s in steps) and not all(s["cued"] for s in steps)
    return {"db": db, "events": events, "steps": steps, "dir": d}


def test_replay_gives_the_steps_of_the_live_walk(walked, tmp_path):
    out = tmp_path / "replay.jsonl"
    r = cli("replay", "1", "--fast", "--db", walked["db"], "--events", out)
    assert r.returncode == 0, r.stdout + r.stderr
    n, cued = len(walked["steps"]), sum(1 for s in walked["steps"] if s["cued"])
    assert f"Same reps as recorded live ({n} reps, {cued} with the cue)" in r.stdout
    replayed = [json.loads(x) for x in open(out)]
    keys = ("index", "foot", "swing_side", "contact_t", "drop_deg", "cued")
    assert [[s[k] for k in keys] for s in replayed if s["event"] == "step"] == \
        [[s[k] for k in keys] for s in walked["steps"]]
    live_summary = [e for e in walked["events"] if e["event"] == "walk_summary"]
    assert [e for e in replayed if e["event"] == "walk_summary"] == live_summary


def test_export_has_one_row_per_step(walked, tmp_path):
    r = cli("export", "1", "--csv", tmp_path, "--db", walked["db"])
    assert r.returncode == 0, r.stdout + r.stderr
    rows = list(csv.DictReader(open(tmp_path / "session-1-reps.csv")))
    assert [(row["low_side"], float(row["max_drop_deg"])) for row in rows] == \
        [(s["swing_side"], s["drop_deg"]) for s in walked["steps"]]
    assert all(row["swing_side"] == row["low_side"] for row in rows)


def test_reports_show_the_steps_and_the_walk(walked, tmp_path):
    page = tmp_path / "s.html"
    r = cli("report", "1", "--db", walked["db"], "-o", page)
    assert r.returncode == 0, r.stdout + r.stderr
    html = page.read_text()
    assert "<h3>Walk</h3>" in html and "<h3>Steps</h3>" in html and "swing side" in html
    assert f"Walk: {len(walked['steps'])} steps" in html
    assert "<h3>Reps</h3>" not in html  # a walk has steps, not reps
    progress = tmp_path / "p.html"
    r = cli("report", "--patient", "W1", "--db", walked["db"], "-o", progress)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<h2>walk</h2>" in progress.read_text()
    (session,) = store.list_sessions(store.connect(walked["db"]))
    assert session.reps == len(walked["steps"])  # steps are indexed like reps: progress over weeks
