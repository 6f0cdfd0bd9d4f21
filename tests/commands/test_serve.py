"""`hiplevel serve` mistakes as one sentence: a port already in use, a file that is not a session
database (the working server is tested in tests/server)."""
import socket
import subprocess

from tests.support.simproc import ROOT, hiplevel


def serve(*args):
    return subprocess.run(hiplevel("serve", *args), capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_port_in_use_and_damaged_database_get_one_sentence(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = serve("--db", tmp_path / "s.sqlite", "--port", s.getsockname()[1])
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database")
    r = serve("--db", bad)
    assert r.returncode == 2 and "not a hiplevel session database" in r.stderr and "Traceback" not in r.stderr
    r = serve("--port", "70000")
    assert r.returncode == 2 and "a port from 1 to 65535" in r.stderr
