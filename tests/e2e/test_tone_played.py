"""Issue 10 item 1: the record says whether a cue tone was actually played. `hiplevel sim` on a real
pty, `hiplevel run` as a process, recording into a real database; once with the sound going to a
real PulseAudio server of our own (host.sinks.sound_server.PulseServer, a silent null sink), once
with `--mute`; then the stored events, the CSV export and the HTML report."""
import csv
import json
import subprocess

import pytest
from tests.support.simproc import ROOT, Sim, hiplevel

from host.sinks import sound_server as pulse

pytestmark = [pytest.mark.sound]


def _run(port, db, ev, *extra, env=None):
    return subprocess.run(hiplevel("run", "--serial", port, "--calibration", "standing", "--headless",
                                   "--db", db, "--events", ev, *extra),
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


def _events(path):
    return [json.loads(x) for x in open(path)]


def test_cue_record_says_whether_a_tone_was_played(tmp_path):
    db = tmp_path / "s.sqlite"
    srv = pulse.PulseServer().start()
    try:
        with Sim("--drops", "8,3", "--speed", 4, "--seed", 9, "--bends", 0) as sim:
            r = _run(sim.port, db, tmp_path / "sound.jsonl", env=srv.client_env())
    finally:
        srv.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    sound = _events(tmp_path / "sound.jsonl")
    assert [c["tone_played"] for c in sound if c["event"] == "cue_on"] == [True]
    assert [(x["cued"], x["feedback_given"]) for x in sound if x["event"] == "rep"] == [(True, True), (False, False)]

    with Sim("--drops", "8,3", "--speed", 4, "--seed", 9, "--bends", 0) as sim:
        r = _run(sim.port, db, tmp_path / "mute.jsonl", "--mute")
    assert r.returncode == 0, r.stdout + r.stderr
    mute = _events(tmp_path / "mute.jsonl")
    assert [c["tone_played"] for c in mute if c["event"] == "cue_on"] == [False]
    assert [(x["cued"], x["feedback_given"]) for x in mute if x["event"] == "rep"] == [(True, False), (False, False)]
    assert "1 of them without a tone" in r.stdout, r.stdout

    out = tmp_path / "csv"
    e = subprocess.run(hiplevel("export", "2", "--csv", out, "--db", db), capture_output=True, text=True, cwd=ROOT)
    assert e.returncode == 0, e.stderr
    rows = list(csv.DictReader(open(out / "session-2-reps.csv")))
    assert [(x["cued"], x["feedback_given"]) for x in rows] == [("1", "0"), ("0", "0")]

    html = {}
    for n in ("1", "2"):
        f = tmp_path / f"r{n}.html"
        rep = subprocess.run(hiplevel("report", n, "-o", f, "--db", db), capture_output=True, text=True, cwd=ROOT)
        assert rep.returncode == 0, rep.stderr
        html[n] = f.read_text()
    assert "no tone was played" in html["2"] and "no tone was played" not in html["1"]
