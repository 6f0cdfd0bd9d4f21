"""The store on a real PostgreSQL server (tests/support/pgserver.py) where it differs from one
SQLite file: several stations (processes) recording into one database at once, and a server that
goes away mid-recording. The rest of the store's tests run on both backends (test_store.py)."""
import json
import os
import subprocess
import sys
import time

from host import store
from host.sinks.recorder import Recorder
from tests.session.test_store import sim_frames
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


def test_a_server_that_goes_away_mid_recording_loses_no_frame_and_gets_none_twice(pg_server, tmp_path):
    """The real server is stopped (fast shutdown: every connection cut) while a station records,
    and started again 2 s later: the frames of the outage go to the local spool and up afterwards."""
    url = pg_server.new_database()
    frames = sim_frames(reps=3)[:900]
    msgs = []
    rec = Recorder(url, "P-200", report=msgs.append, commit_interval_s=0.1, spool_folder=tmp_path / "spool")
    rec.start_block({})
    for i, (t, f) in enumerate(frames):
        rec.frame(t, f)
        if i == 300:
            time.sleep(0.5)  # the first frames are on the server
            pg_server.stop()
        if i == 600:
            time.sleep(1.0)  # frames 301..600 can only go to the spool
            spooled_while_away = rec.spooled
            pg_server.start()
        time.sleep(0.002)
    line = rec.close()
    assert spooled_while_away > 0 and rec.spooled >= spooled_while_away
    assert "Recorded as session" in line, (line, msgs)
    assert "Recording goes on locally" in msgs[0] and "cannot be reached" in msgs[0]
    assert "reached the database server again" in msgs[-1]
    assert not list((tmp_path / "spool").iterdir())  # the spool is gone once uploaded
    conn = store.connect(url)
    (s,) = store.list_sessions(conn)
    assert s.ended_utc is not None and len(s.blocks) == 1
    assert [(t, f) for t, f, _ in store.frames(conn, s.blocks[0].id)] == frames  # all, in order, once each
    assert s.blocks[0].frame_count == len(frames)


def test_sqlite_upserts_read_the_same_on_postgresql(db):
    """INSERT OR REPLACE / OR IGNORE (SQLite's words, used by the programme tables) on both backends."""
    conn = store.connect(db, create=True)
    conn.execute("CREATE TABLE kv (a INTEGER, b INTEGER, v TEXT, PRIMARY KEY (a, b))")
    for v in ("first", "second"):
        conn.execute("INSERT OR REPLACE INTO kv (a, b, v) VALUES (?, ?, ?)", (1, 2, v))
    conn.execute("INSERT OR IGNORE INTO kv (a, b, v) VALUES (?, ?, ?)", (1, 2, "third"))
    conn.execute("INSERT OR IGNORE INTO kv (a, b, v) VALUES (?, ?, ?)", (1, 3, "100%"))
    assert [tuple(r) for r in conn.execute("SELECT a, b, v FROM kv ORDER BY b")] == [(1, 2, "second"), (1, 3, "100%")]


def test_server_errors_in_user_words_without_the_password(pg_server):
    from tests.support.pgserver import free_port
    url = pg_server.new_database()
    store.connect(url, create=True).close()
    cases = [(pg_server.url(url.rsplit("/", 1)[1], password="wrong-secret"), "refused the user name or password"),
             (pg_server.url("no_such_db"), "no such database"),
             (f"postgresql://hiplevel:wrong-secret@127.0.0.1:{free_port()}/x", "cannot be reached")]
    for bad, words in cases:
        r = subprocess.run([sys.executable, "-m", "host.cli", "sessions", "--db", bad], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "secret" not in r.stderr + r.stdout and ":***@" in r.stderr
    r = subprocess.run([sys.executable, "-m", "host.cli", "sessions"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60, env={**os.environ, "HIPLEVEL_DB": url})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr  # an empty database lists nothing


def test_a_commit_cut_off_unanswered_is_looked_up_and_sent_again_once(pg_server, tmp_path):
    """The station's connection is killed while the server is inside its COMMIT (a deferred trigger
    holds the commit for 3 s; the test terminates that backend): the recorder cannot know whether the
    commit was taken, looks it up on the server after reconnecting, and sends those frames again."""
    url = pg_server.new_database()
    setup = store.connect(url, create=True)
    setup.executescript("""
        CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON frames DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (NEW.n = 300) EXECUTE FUNCTION slow_commit();
    """)
    frames = sim_frames(reps=3)[:600]
    msgs = []
    rec = Recorder(url, "P-300", report=msgs.append, commit_interval_s=0.1, spool_folder=tmp_path / "spool")
    rec.start_block({})
    for t, f in frames[:400]:
        rec.frame(t, f)
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    killed = []
    while not killed and time.monotonic() < deadline:
        killed = setup.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                               "wait_event = 'PgSleep' AND query = 'COMMIT'").fetchall()
        time.sleep(0.05)
    assert killed, "the recorder's COMMIT was never seen waiting in the trigger"
    for t, f in frames[400:]:
        rec.frame(t, f)
    line = rec.close()
    assert "Recorded as session" in line, (line, msgs)
    assert any("Recording goes on locally" in m for m in msgs)
    conn = store.connect(url)
    (s,) = store.list_sessions(conn)
    assert [(t, f) for t, f, _ in store.frames(conn, s.blocks[0].id)] == frames  # once each, in order
