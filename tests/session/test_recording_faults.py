"""Recording survives what real use throws at it, with real processes: `hiplevel sim` on a real pty and
`hiplevel run` recording into a real SQLite file, killed with SIGKILL mid-set; a real tmpfs filled to
the last byte; a real read-only bind mount (chmod does not stop root). The live session must go on
with a clear message, and what was recorded before must stay intact.

Mounting needs root (as `make test` runs here)."""
import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

pytestmark = [pytest.mark.root]
from tests.support.simproc import ROOT, Sim, hiplevel, run_host

from host import store
from host.sinks.recorder import Recorder


def cli(*args, timeout=60):
    return subprocess.run(hiplevel(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def record_run(db, drops="6", speed=8, patient="P-1", events=None):
    """A real sim + real `hiplevel run` recording into db; returns the finished run."""
    extra = ["--events", events] if events else []
    with Sim("--drops", drops, "--speed", speed, "--seed", 4) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--db", db, "--patient", patient, *extra)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def snapshot(db, session_id):
    """A fingerprint of everything stored for one session."""
    c = sqlite3.connect(db)
    try:
        frames = c.execute("SELECT f.n, f.t_host_s, f.data FROM frames f JOIN blocks b ON f.block_id = b.id "
                           "WHERE b.session_id = ? ORDER BY b.id, f.n", (session_id,)).fetchall()
        rest = c.execute("SELECT e.json FROM events e JOIN blocks b ON e.block_id = b.id WHERE b.session_id = ? "
                         "ORDER BY e.id", (session_id,)).fetchall()
        rest += c.execute("SELECT * FROM blocks WHERE session_id = ?", (session_id,)).fetchall()
        rest += c.execute("SELECT id, patient_id, started_utc, ended_utc, source FROM sessions WHERE id = ?",
                          (session_id,)).fetchall()
    finally:
        c.close()
    return len(frames), hashlib.sha256(repr((frames, rest)).encode()).hexdigest()


def integrity(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def mount(*args):
    r = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"this test needs root to mount a file system: {r.stderr}"


def umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder, leave_bytes=0):
    """Fill the file system holding `folder` until only about leave_bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    try:
        with open(folder / f"filler-{time.monotonic_ns()}", "wb") as f:
            f.write(b"\0" * max(0, free - leave_bytes))
            while leave_bytes == 0:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:  # no space left: that is the point
        pass


def test_sigkill_mid_set_loses_at_most_the_last_second(tmp_path):
    db, ev = tmp_path / "s.sqlite", tmp_path / "ev.jsonl"
    sim = Sim("--drops", ",".join(["6"] * 12), "--speed", 4, "--seed", 2)
    host = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--headless", "--mute", "--db", db,
                                     "--patient", "P-kill", "--events", ev),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # until the set is under way: two reps done
            if ev.exists() and ev.read_text().count('"rep"') >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never got to its second rep")
        time.sleep(0.3)  # somewhere between two commits
        t_kill = time.monotonic()  # CLOCK_MONOTONIC: the same clock the run stamps frames with
        host.send_signal(signal.SIGKILL)
        host.wait(10)
    finally:
        host.kill()
        sim.proc.kill()
        sim.stop()
    assert host.returncode == -signal.SIGKILL
    assert integrity(db) == "ok"
    c = sqlite3.connect(db)
    n, last_t, max_n = c.execute("SELECT count(*), max(t_host_s), max(n) FROM frames").fetchone()
    assert n == max_n + 1 > 100  # every frame from the first on, no holes
    print(f"last frame committed {t_kill - last_t:.3f} s before the kill")
    assert last_t >= t_kill - 1.0
    assert c.execute("SELECT ended_utc FROM sessions").fetchone()[0] is None
    c.close()

    listing = cli("sessions", "--db", db)
    assert listing.returncode == 0 and "P-kill" in listing.stdout and "interrupted" in listing.stdout
    ev_out = tmp_path / "replay.jsonl"
    r = cli("replay", "last", "--fast", "--db", db, "--events", ev_out)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "interrupted" in r.stdout and "Traceback" not in r.stderr
    live_reps = [e for e in map(json.loads, ev.read_text().splitlines()) if e["event"] == "rep"]
    replay_reps = [e for e in map(json.loads, ev_out.read_text().splitlines()) if e["event"] == "rep"]
    # the replay ends where the recording does, at most a second of data before the kill; all its reps
    # are the live ones, except perhaps a last one that the end of the recording cut short
    same = len([r for r in replay_reps if r in live_reps])
    assert same >= 2 and same >= len(replay_reps) - 1 and replay_reps[:same] == live_reps[:same]


@contextlib.contextmanager
def tmpfs(folder, size: str):
    """A real tmpfs of `size` (e.g. 1m, 64k) mounted at `folder` for the block (needs root)."""
    folder.mkdir()
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder)
    try:
        yield folder
    finally:
        umount(folder)


@pytest.fixture
def small_fs(tmp_path):
    with tmpfs(tmp_path / "small", "1m") as mnt:
        yield mnt


def test_full_disk_keeps_the_live_session_going_and_the_recorded_data_intact(tmp_path, small_fs):
    db = small_fs / "s.sqlite"
    r = record_run(db, patient="P-full")
    assert r.returncode == 0 and "Recorded as session 1" in r.stdout
    before = snapshot(db, 1)

    # the disk fills up a second or two into the next set
    # (192 KiB: the firmware flushes a frame every 7.5 ms, about 2.5 times as many frames, each a row)
    fill(small_fs, leave_bytes=192 * 1024)
    ev = tmp_path / "ev.jsonl"  # the event log lives elsewhere: it shows the live session went on
    r = record_run(db, drops="6,6", speed=4, patient="P-full", events=ev)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Recording stopped: the disk is full" in r.stdout
    assert "The live feedback goes on" in r.stdout
    assert "Reps: 2" in r.stdout and "Recording stopped early" in r.stdout
    events = [json.loads(x) for x in ev.read_text().splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["reps"] == 2

    assert integrity(db) == "ok"
    assert snapshot(db, 1) == before
    listing = cli("sessions", "--db", db)
    assert listing.returncode == 0, listing.stderr
    lines = [x for x in listing.stdout.splitlines() if "P-full" in x]
    assert len(lines) == 2 and "complete" in lines[0] and "interrupted" in lines[1]

    # full from the very start: not recorded, said plainly, the session still runs
    fill(small_fs)
    r = record_run(db, patient="P-full")
    assert r.returncode == 0 and "Reps: 1" in r.stdout
    assert "Not recorded: the disk is full" in r.stdout
    assert integrity(db) == "ok" and snapshot(db, 1) == before


def test_read_only_folder_gives_a_message_and_reads_still_work(tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    r = record_run(rw / "s.sqlite", patient="P-ro")
    assert r.returncode == 0
    before = snapshot(rw / "s.sqlite", 1)
    mount("--bind", rw, ro)
    try:
        mount("-o", "remount,bind,ro", ro)
        db = ro / "s.sqlite"
        r = record_run(db, patient="P-ro")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Reps: 1" in r.stdout
        assert "cannot be written" in r.stdout and "read-only" in r.stdout
        assert "Not recorded" in r.stdout
        # a new database in a read-only folder: the same plain words
        msgs = []
        rec = Recorder(ro / "new" / "s.sqlite", "P-ro", report=msgs.append)
        assert rec.failed and "read-only" in msgs[0] and rec.close().startswith("Not recorded")
        # reading from read-only media works (a cleanly closed file needs no -wal / -shm)
        listing = cli("sessions", "--db", db)
        assert listing.returncode == 0 and listing.stdout.count("P-ro") == 1, listing.stdout + listing.stderr
        rep = cli("report", "1", "--db", db, "-o", tmp_path / "r.html")
        assert rep.returncode == 0 and (tmp_path / "r.html").stat().st_size > 1000, rep.stderr
        assert snapshot(db, 1) == before
    finally:
        umount(ro)
    assert integrity(rw / "s.sqlite") == "ok" and snapshot(rw / "s.sqlite", 1) == before
    assert store.list_sessions(store.connect(rw / "s.sqlite"))[0].status == "complete"
