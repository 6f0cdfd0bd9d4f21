"""A home installation and its clinic, end to end with real processes: `hiplevel serve` (uvicorn on
loopback) on the clinic's PostgreSQL database, a therapist's pairing code from the real dashboard,
`hiplevel pair`, then `hiplevel today --share-live` led by the simulated patient over a real
pseudo-terminal: the programme comes down from the clinic, the therapist sees the session live while
it runs, and it uploads by itself at the end, with its programme steps. With the clinic down an
upload waits and says so; sent again later it is the same session, not a second one."""
import os
import re
import subprocess
import time

import httpx

from host import store
from host.server import auth
from host.session import programme as pg
from tests.support.simproc import ROOT, Sim, hiplevel

PROGRAMME = """
[[item]]
exercise = "hip-dip"
stance = "left"
reps = 3
rest_s = 2
"""
PASSWORD = "home-test-pw-1"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, db, port):
        self.proc = subprocess.Popen(hiplevel("serve", "--db", db, "--port", port), cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/signin", timeout=1)
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                time.sleep(0.2)
        raise AssertionError("the dashboard did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def signed_in(base) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=10)
    page = c.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert c.post("/signin", data={"username": "tess", "password": PASSWORD, "csrf": csrf}).status_code == 303
    return c


def test_pair_programme_live_and_upload(tmp_path, pg_server):
    clinic_db = pg_server.new_database()
    conn = store.connect(clinic_db, create=True)
    store.set_therapist(conn, "Riverside", "tess", auth.hash_password(PASSWORD))
    store.assign_patient(conn, "P-9", "Riverside")
    pg.save(conn, "P-9", pg.from_toml(PROGRAMME))
    pid = store.patient_id(conn, "P-9", create=False)
    conn.close()
    home_db, prog = tmp_path / "home.sqlite", tmp_path / "p.toml"
    prog.write_text(PROGRAMME)
    env = {**os.environ, "HIPLEVEL_PAIRING": str(tmp_path / "config" / "pairing.json")}
    port = free_port()
    server = Served(clinic_db, port)
    try:
        web = signed_in(server.base)
        page = web.get(f"/patients/{pid}")
        code = re.search(r'id="pair-code">([^<]+)<', web.post(
            f"/patients/{pid}/pair", data={"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)}).text).group(1)
        r = subprocess.run(hiplevel("pair", server.base, code, "--name", "test home"), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "Paired with Riverside" in r.stdout and "patient P-9" in r.stdout
        assert oct(os.stat(tmp_path / "config" / "pairing.json").st_mode & 0o777) == "0o600"
        assert "test home" in web.get(f"/patients/{pid}").text

        with Sim("--programme", prog, "--speed", 2, "--seed", 4) as sim:
            today = subprocess.Popen(hiplevel("today", "--serial", sim.port, "--db", home_db, "--headless",
                                              "--voice", "off", "--mute", "--share-live"),
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            seen = []  # the therapist's live list while the home session runs
            while today.poll() is None:
                live = [b for b in web.get("/api/live").json()["live"] if b["patient"] == "P-9"]
                if live and live[0]["frames"] > 0:
                    seen.append(live[0]["frames"])
                time.sleep(0.5)
            out, err = today.communicate(timeout=60)
        assert today.returncode == 0, out + err
        assert "Traceback" not in err
        assert "New programme from the clinic (its version 1), saved here as version 1." in out
        assert "Sharing this session live with Riverside." in out
        assert len(seen) >= 2 and seen[-1] > seen[0], seen  # it grew while the therapist watched
        m = re.search(r"Session (\d+) uploaded to the clinic \(\d+ KB; session (\d+) there\)\.", out)
        assert m, out
        local_id, remote_id = int(m.group(1)), int(m.group(2))

        hconn, cconn = store.connect(home_db), store.connect(clinic_db)
        local, remote = store.get_session(hconn, local_id), store.get_session(cconn, remote_id)
        assert remote.patient == "P-9" and remote.ended_utc == local.ended_utc
        assert remote.reps == local.reps >= 3
        assert [b.frame_count for b in remote.blocks] == [b.frame_count for b in local.blocks]
        steps = cconn.execute("SELECT session_id, reps FROM programme_steps").fetchall()
        assert [tuple(s) for s in steps] == [(remote_id, 3)]
        hconn.close()
        cconn.close()
        assert f'href="/sessions/{remote_id}"' in web.get(f"/patients/{pid}").text
        again = subprocess.run(hiplevel("upload", "--db", home_db), cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 0 and "Nothing to upload" in again.stdout, again.stdout + again.stderr
    finally:
        server.stop()

    # the clinic is down: the upload waits, says so, and keeps the session here
    hconn = store.connect(home_db)
    hconn.execute("UPDATE sessions SET uploaded_utc = NULL")  # as if the answer had been lost
    hconn.close()
    down = subprocess.run(hiplevel("upload", "--db", home_db), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert down.returncode == 1 and "cannot be reached" in down.stdout and "sent next time" in down.stdout
    assert "Traceback" not in down.stderr
    server = Served(clinic_db, port)
    try:
        up = subprocess.run(hiplevel("upload", "--db", home_db), cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
        assert up.returncode == 0 and f"session {remote_id} there" in up.stdout, up.stdout + up.stderr
        cconn = store.connect(clinic_db)
        assert cconn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1  # nothing twice
        cconn.close()
    finally:
        server.stop()
