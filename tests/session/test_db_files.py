"""The session database and the files made from it, on real SQLite files and with real processes
(`hiplevel sim` on a real pty, `hiplevel run`, `sessions`, `export`, `report`): odd files are refused
in words and left as they were, a database locked by another program is waited for, a run killed
before any data leaves no session, a failed export changes nothing, and two patient labels never
share a report file."""
import os
import signal
import sqlite3
import subprocess
import threading
import time


from host import store
from host.cli import main
from host.processing.pipeline import PipelineConfig
from host.sinks.recorder import Recorder, settings_of
from tests.session.test_store import sim_frames
from tests.support.simproc import ROOT, Sim, hiplevel, run_host


def record(db, patient="P-1", frames=None):
    rec = Recorder(db, patient, report=lambda m: None)
    rec.start_block(settings_of(PipelineConfig()))
    for t, f in frames or sim_frames():
        rec.frame(t, f)
    assert rec.close().startswith("Recorded as session")
    return rec.session_id


def test_a_negative_schema_version_is_refused_in_words(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    c = sqlite3.connect(db)
    c.execute("PRAGMA user_version = -3")
    c.close()
    before = db.read_bytes()
    assert main(["sessions", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "not a hiplevel session database (its schema version is -3)" in err and "Traceback" not in err
    assert db.read_bytes() == before


def test_an_empty_file_is_not_turned_into_a_database(tmp_path, capsys):
    db = tmp_path / "empty.sqlite"
    db.touch()
    for command in (["sessions"], ["report", "last"], ["export", "last", "--csv", str(tmp_path / "out")]):
        assert main([*command, "--db", str(db)]) == 2
        err = capsys.readouterr().err
        assert "is an empty file, not a session database" in err, err
        assert db.stat().st_size == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_database_locked_longer_than_the_busy_timeout_at_start_is_waited_for(tmp_path):
    db = tmp_path / "s.sqlite"
    store.connect(db, create=True).close()  # an existing database, cleanly closed (rollback journal)
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another program holds it for 7 s, past the 5 s busy timeout
    release = threading.Timer(7.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with Sim("--drops", "6", "--speed", 8, "--seed", 4, "--bends", 0) as sim:
            r = run_host("--serial", sim.port, "--headless", "--mute", "--calibration", "standing",
                         "--db", db, "--patient", "P-lock")
    finally:
        release.join()
        other.close()
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Recording is waiting" in r.stdout and "Reps: 1" in r.stdout
    assert "Recorded as session 1" in r.stdout, r.stdout
    conn = store.connect(db)
    (s,) = store.list_sessions(conn)
    assert s.patient == "P-lock" and s.reps == 1 and s.status == "complete" and s.blocks[0].frame_count > 100


def test_a_run_killed_before_any_data_leaves_no_session(db):  # on both backends
    master, slave = os.openpty()  # a real serial port that never sends anything
    host = subprocess.Popen(hiplevel("run", "--serial", os.ttyname(slave), "--headless", "--mute",
                                     "--db", db), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not os.read(master, 64) and time.monotonic() < deadline:  # the START command came
            pass
        time.sleep(1.5)  # a few commit intervals of the recorder
        host.send_signal(signal.SIGKILL)
        host.wait(10)
    finally:
        host.kill()
        os.close(master)
        os.close(slave)
    if isinstance(db, str) or db.exists():
        assert store.list_sessions(store.connect(db)) == []
    r = subprocess.run(hiplevel("sessions", "--db", db), capture_output=True, text=True, cwd=ROOT)
    assert "interrupted" not in r.stdout


def test_export_from_a_damaged_database_changes_nothing_in_the_folder(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    record(db, frames=sim_frames(reps=4))
    out = tmp_path / "out"
    assert main(["export", "1", "--csv", str(out), "--db", str(db)]) == 0
    capsys.readouterr()
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(earlier) == 4 and all(earlier.values())
    # damage the second half of the file (where the frames are), keep the schema readable
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(len(data) // 2 // page * page, len(data) - page, 2 * page):
        data[off:off + page] = os.urandom(page)
    db.write_bytes(bytes(data))
    assert main(["export", "1", "--csv", str(out), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "nothing was changed" in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no partial files, no temp folder


def test_patient_labels_that_only_differ_in_unsafe_characters_get_their_own_report(tmp_path, monkeypatch, capsys):
    db = tmp_path / "s.sqlite"
    labels = ["..", "/", "P 1", "P_1", "P-017"]
    for label in labels:
        record(db, patient=label, frames=sim_frames()[:60])
    monkeypatch.chdir(tmp_path)
    written = []
    for label in labels:
        assert main(["report", "--patient", label, "--db", str(db)]) == 0
        written.append(capsys.readouterr().out.strip())
    assert len(set(written)) == len(labels), written
    assert written[-1] == "patient-P-017-progress.html"  # a safe label is kept as it is
    assert all("/" not in w and not w.startswith(".") for w in written)
    assert len(list(tmp_path.glob("patient-*-progress.html"))) == len(labels)
