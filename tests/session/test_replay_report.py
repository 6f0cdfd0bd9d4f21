"""Recorded sessions replayed, exported and reported, from real recordings: `hiplevel sim` on a real
pty, `hiplevel run` recording into a real database, then the `sessions`, `replay`, `export`,
`report` and `bench replay` commands as processes; on both backends (an SQLite file, and a
database on the real PostgreSQL server of tests/support/pgserver.py)."""
import csv
import json
import re
import subprocess

import numpy as np
import pytest
from tests.support.simproc import ROOT, Sim, hiplevel, run_host

from host import store
from host.commands.export import BLOCK_COLUMNS, EVENT_COLUMNS, REP_COLUMNS, SAMPLE_COLUMNS

PATIENT = "P<&>1"  # characters that must be escaped in HTML


def cli(*args, timeout=120):
    return subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def jsonl(path):
    return [json.loads(x) for x in open(path)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rec(request, tmp_path_factory):
    """Three recorded sessions: two of PATIENT (deep drops, then shallower ones), one of P-2."""
    d = tmp_path_factory.mktemp("sessions")
    db = d / "s.sqlite" if request.param == "sqlite" else request.getfixturevalue("pg_server").new_database()
    out = {"db": db, "dir": d}
    for name, drops, stance, patient, seed in (("a", "3,8,4,9", "left", PATIENT, 11),
                                               ("b", "4,5,3,6", "left", PATIENT, 12),
                                               ("c", "7", "right", "P-2", 13)):
        ev, ang = d / f"{name}.jsonl", d / f"{name}.csv"
        with Sim("--drops", drops, "--stance", stance, "--speed", 8, "--seed", seed) as sim:
            r = run_host("--serial", sim.port, "--stance", stance, "--headless", "--mute", "--threshold", 5,
                         "--db", db, "--patient", patient, "--events", ev, "--angles", ang)
        assert r.returncode == 0 and "Recorded as session" in r.stdout, r.stdout + r.stderr
        out[name] = {"events": jsonl(ev), "angles": ang}
    return out


def reps_of(events):
    return [e for e in events if e["event"] == "rep"]


def test_replay_gives_the_events_of_the_live_run(rec, tmp_path):
    out = tmp_path / "replay.jsonl"
    r = cli("replay", "1", "--fast", "--db", rec["db"], "--events", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Same reps as recorded live (4 reps, 2 with the cue)" in r.stdout
    live = [e for e in rec["a"]["events"] if e["event"] != "connected"]
    replay = [e for e in jsonl(out) if e["event"] != "connected"]
    assert len(reps_of(live)) == 4
    assert replay == live  # reps, cues, calibration and the end summary, field for field
    assert re.search(r"Replayed [\d.]+ s of data in [\d.]+ s \(\d+x real time\)", r.stdout)


def test_replay_with_other_thresholds_gives_other_cues(rec, tmp_path):
    live_reps = reps_of(rec["a"]["events"])
    assert [x["cued"] for x in live_reps] == [False, True, False, True]
    lower, higher = tmp_path / "low.jsonl", tmp_path / "high.jsonl"
    r = cli("replay", "1", "--fast", "--threshold", 2.5, "--db", rec["db"], "--events", lower)
    assert r.returncode == 0 and "Differs from the live recording" in r.stdout, r.stdout + r.stderr
    assert "thresholds left 2.5° / right 2.5°" in r.stdout
    assert [x["cued"] for x in reps_of(jsonl(lower))] == [True, True, True, True]
    r = cli("replay", "1", "--fast", "--threshold", 12, "--db", rec["db"], "--events", higher)
    assert r.returncode == 0
    events = jsonl(higher)
    assert not any(e["event"] == "cue_on" for e in events)
    # the depth of each rep does not depend on the threshold
    assert [x["max_drop_deg"] for x in reps_of(events)] == [x["max_drop_deg"] for x in live_reps]


def test_paced_replay_keeps_the_recorded_timing(rec):
    (session,) = [s for s in store.list_sessions(store.connect(rec["db"])) if s.id == 1]
    r = cli("replay", "1", "--speed", 4, "--db", rec["db"])
    assert r.returncode == 0, r.stderr
    wall = float(re.search(r"in ([\d.]+) s \(", r.stdout).group(1))
    # never faster than asked: paced on the recorded host timing (the sim ran at --speed 8)
    assert wall >= sum(b.host_duration_s for b in session.blocks) / 4 * 0.95
    assert "reps" in r.stdout  # the console view ran


def test_export_writes_the_documented_columns_and_the_live_numbers(rec, tmp_path):
    r = cli("export", "1", "--csv", tmp_path / "out", "--db", rec["db"])
    assert r.returncode == 0, r.stdout + r.stderr
    read = lambda kind: list(csv.DictReader(open(tmp_path / "out" / f"session-1-{kind}.csv")))
    for kind, cols in (("samples", SAMPLE_COLUMNS), ("events", EVENT_COLUMNS), ("blocks", BLOCK_COLUMNS)):
        assert next(csv.reader(open(tmp_path / "out" / f"session-1-{kind}.csv"))) == cols
    assert next(csv.reader(open(tmp_path / "out" / "session-1-reps.csv")))[:len(REP_COLUMNS)] == REP_COLUMNS

    live = rec["a"]["events"]
    samples = read("samples")
    assert len(samples) == live[-1]["samples"]
    # the angles are those the live run computed, sample for sample
    ang = np.genfromtxt(rec["a"]["angles"], delimiter=",", names=True)
    by_seq = {int(s["seq"]): s for s in samples}
    exported = np.array([float(by_seq[int(q)]["obliquity_deg"]) for q in ang["seq"]])
    assert np.max(np.abs(exported - ang["obliquity_deg"])) < 1e-4
    assert all(s["obliquity_deg"] == "" for s in samples if int(s["seq"]) < ang["seq"][0])  # before calibration
    # acc at rest is about 1 g
    assert 0.95 < np.linalg.norm([float(samples[0][f"acc_{a}_g"]) for a in "xyz"]) < 1.05
    # cue_on marks exactly the samples inside the recorded cue periods
    periods = store.cue_periods(live, 1e9)
    assert len(periods) == 2
    for s in samples[::7]:
        inside = any(a - 1e-6 <= float(s["t_s"]) < b - 1e-6 for a, b in periods)
        assert s["cue_on"] == ("1" if inside else "0")
    reps = read("reps")
    assert [float(x["max_drop_deg"]) for x in reps] == [x["max_drop_deg"] for x in reps_of(live)]
    assert [x["cued"] for x in reps] == ["0", "1", "0", "1"]
    kinds = [x["event"] for x in read("events")]
    assert kinds.count("cue_on") == 2 and kinds[-1] == "end"
    (block,) = read("blocks")
    assert block["patient"] == PATIENT and block["status"] == "complete" and block["exercise"] == "hip-dip"


def test_session_report_is_self_contained_html(rec, tmp_path):
    out = tmp_path / "r.html"
    r = cli("report", "1", "--db", rec["db"], "-o", out)
    assert r.returncode == 0, r.stdout + r.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for fetch in ("http:", "https:", "<script", "src=", "<link", "url(", "@import"):
        assert fetch not in page, fetch  # nothing to fetch: readable offline, without the app
    assert "P&lt;&amp;&gt;1" in page and PATIENT not in page
    assert page.count("<svg") == 1 and "<polyline" in page  # the angle plot
    # two cue periods shaded, grey: recorded with --mute, so no tone was played (issue 10 item 1)
    assert page.count('fill="#b8b8b8"') == 2 and page.count('fill="#f5a623"') == 0
    reps_table = page.split("<h3>Reps</h3>")[1].split("</table>")[0]
    assert reps_table.count("<tr>") == 1 + 4
    side_table = page.split("<h3>Per side</h3>")[1].split("</table>")[0]
    worst = max(x["max_drop_deg"] for x in reps_of(rec["a"]["events"]))
    assert "right hip low" in side_table and f">{worst:g}<" in side_table


def test_patient_progress_report(rec, tmp_path):
    out = tmp_path / "p.html"
    r = cli("report", "--patient", PATIENT, "--db", rec["db"], "-o", out)
    assert r.returncode == 0, r.stdout + r.stderr
    page = out.read_text()
    assert "http:" not in page and "<script" not in page and page.count("<svg") == 2
    rows = page.split("<th>status</th></tr>")[1].split("</table>")[0].split("<tr>")[1:]
    assert len(rows) == 2  # P-2's session is not in it
    for row, name in zip(rows, "ab"):
        worst = max(x["max_drop_deg"] for x in reps_of(rec[name]["events"]))
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[2] == "4" and float(cells[6]) == worst  # reps; right side worst drop
    conn = store.connect(rec["db"])
    prog = store.progress(conn, PATIENT)
    assert [p["sides"]["right"]["worst_drop_deg"] for p in prog] == [
        max(x["max_drop_deg"] for x in reps_of(rec[n]["events"])) for n in "ab"]


def test_sessions_listing_and_plain_errors(rec, tmp_path):
    r = cli("sessions", "--db", rec["db"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["session", "date", "patient"] and len(lines) == 4
    assert all("complete" in x and "hip-dip" in x for x in lines[1:])
    r = cli("sessions", "--patient", "P-2", "--db", rec["db"])
    assert len(r.stdout.splitlines()) == 2 and "right" in r.stdout
    for args, words in ((["sessions", "--patient", "nobody"], "no patient 'nobody'"),
                        (["replay", "99", "--db"], "there is no session 99"),
                        (["replay", "1", "--block", "3", "--db"], "has no block 3"),
                        (["export", "1", "--csv", "/proc/x", "--db"], "cannot make the folder"),
                        (["report", "--db"], "give a session number, or --patient"),
                        (["replay", "1", "--speed", "0", "--db"], "speed goes from")):
        r = cli(*args, rec["db"]) if args[-1] == "--db" else cli(*args, "--db", rec["db"])
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = cli("sessions", "--db", tmp_path / "none.sqlite")
    assert r.returncode == 2 and "no session database" in r.stderr


def test_a_damaged_database_gets_words_not_a_traceback(rec, tmp_path):
    if isinstance(rec["db"], str):
        pytest.skip("damages an SQLite file's bytes; a PostgreSQL server's storage is its own")
    data = bytearray(rec["db"].read_bytes())
    a, b = int(0.3 * len(data)), int(0.7 * len(data))  # the middle pages: frames, not the schema
    data[a:b] = b"\xa5" * (b - a)
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(bytes(data))
    for args in (["replay", "1", "--fast"], ["export", "1", "--csv", tmp_path / "x"], ["report", "1", "-o",
                                                                                      tmp_path / "r.html"]):
        r = cli(*args, "--db", damaged)
        assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_bench_replay_writes_only_its_own_section(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\n## Host pipeline cost\n\nnumbers of another bench\n")
    r = cli("bench", "replay", "--seconds", 20, "--repeats", 1, "--write-docs", doc)
    assert r.returncode == 0, r.stderr
    text = doc.read_text()
    assert "## Host pipeline cost\n\nnumbers of another bench" in text
    assert "## Session recording and replay" in text
    assert re.search(r"\*\*[\d,]+x real time\*\*", text) and "µs per frame" in text
