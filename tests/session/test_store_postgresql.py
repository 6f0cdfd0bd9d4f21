"""The store on a real PostgreSQL server (tests/support/pgserver.py) where it differs from one
SQLite file: several stations (processes) recording into one database at once, and a server that
goes away mid-recording. The rest of the store's tests run on both backends (test_store.py)."""
import json
import subprocess
import sys

from host import store
from tests.support.simproc import ROOT


def test_several_stations_recording_at_once_lose_no_frame(pg_server):
    url = pg_server.new_database()
    # four stations, two of them for the same patient (added by whichever comes first)
    patients = ["P-100", "P-101", "P-102", "P-101"]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.recording_station", url, p, "1500", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for i, p in enumerate(patients)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    conn = store.connect(url)
    assert sorted(store.list_patients(conn)) == ["P-100", "P-101", "P-102"]
    sessions = {s.id: s for s in store.list_sessions(conn)}
    assert len(sessions) == 4
    for patient, r in zip(patients, results):
        assert r["messages"] == [] and "Recorded as session" in r["line"], r["line"]
        s = sessions[r["session"]]
        assert s.patient == patient and s.ended_utc is not None
        (block,) = s.blocks
        got = [[t, f.hex()] for t, f, _ in store.frames(conn, block.id)]
        assert block.frame_count == len(got) == 1500 and got == r["frames"]
