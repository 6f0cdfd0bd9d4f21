"""Issue 10 item 4: Ctrl-C (SIGINT) on a headless `hiplevel run --serial` is the normal way to stop
a real sensor with no scripted end: it finishes the set, writes the summary and the `end` event,
and the session is stored as "ended by the user". A real simulator process on a real pty, a real
`hiplevel run` process, a real SIGINT, then the real database."""
import json
import signal
import subprocess
import time

from tests.support.simproc import ROOT, Sim, hiplevel

from host import store


def _wait_for(path, kind, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if any(json.loads(x)["event"] == kind for x in open(path) if x.endswith("\n")):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    return False


def test_sigint_on_a_headless_run_ends_the_set_and_the_session_cleanly(tmp_path):
    ev, db = tmp_path / "ev.jsonl", tmp_path / "s.sqlite"
    with Sim("--drops", "7", "--reps", 30, "--speed", 2, "--seed", 8, "--bends", 0) as sim:
        host = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--calibration", "standing",
                                         "--headless", "--mute", "--db", db, "--events", ev),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert _wait_for(ev, "rep", 60), "no rep before the interrupt"
            host.send_signal(signal.SIGINT)  # mid-set: 30 reps were planned
            out, err = host.communicate(timeout=30)
        finally:
            if host.poll() is None:
                host.kill()
            sim.proc.kill()
    assert host.returncode == 0, out + err
    assert "Traceback" not in err
    assert "Session ended: ended by the user." in out, out
    assert "Reps: " in out and "Recorded as session 1" in out
    events = [json.loads(x) for x in open(ev)]
    kinds = [e["event"] for e in events]
    assert "set_summary" in kinds and kinds[-1] == "end"
    assert events[-1]["reason"] == "ended by the user" and events[-1]["reps"] >= 1
    conn = store.connect(db, writable=False)
    try:
        (s,) = store.list_sessions(conn)
        assert s.ended_utc is not None and s.status == "ended by the user", s.status
        stored = [e["event"] for _, e in store.events(conn, s.blocks[0].id)]
        assert stored.count("set_summary") == 1 and stored[-1] == "end"
    finally:
        conn.close()
