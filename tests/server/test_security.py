"""The dashboard's security, through Starlette's TestClient (in-process HTTP) and through a real
`hiplevel serve` (uvicorn) on loopback: every route refused without a session, one clinic's
therapist cannot reach another clinic's patient, session or live block by id, injection and
path-traversal strings in every parameter, forged CSRF tokens, the sign-in rate limit, expired and
forged session cookies, oversize bodies, foreign WebSocket origins."""
import asyncio
import socket
import subprocess
import time

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from host import store
from host.server import auth
from tests.server.conftest import WS_ORIGIN, TestClient, csrf_of, sign_in
from tests.support.clinic import PASSWORDS
from tests.support.simproc import ROOT, hiplevel

PAGES = ["/", "/patients/{p1}", "/sessions/{s1}", "/live", "/live/{b1}", "/api/live", "/static/live.js",
         "/static/programme.js", "/patients/{p1}/programme", "/patients/{p1}/programme.toml"]
FORMS = ["/signout", "/patients", "/patients/{p1}/programme", "/patients/{p1}/programme/import",
         "/patients/{p1}/pair", "/patients/{p1}/devices/1/revoke"]  # POST
U = "e" * 32
DEVICE_ROUTES = [("GET", "/api/device/programme"), ("POST", "/api/device/uploads"), ("GET", f"/api/device/uploads/{U}"),
                 ("POST", f"/api/device/uploads/{U}/chunks/0"), ("POST", f"/api/device/uploads/{U}/finish"),
                 ("POST", f"/api/device/live/{U}")]  # a paired home installation's, with its bearer token
BAD = ["1 OR 1=1", "1; DROP TABLE patients", "1' OR '1'='1", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd",
       "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "1%00", "-1", "0", "99999999999999999999999", "１", "1e3", " 1",
       "<script>alert(1)</script>", "%27%3B--"]



def table_counts(db, tables=("patients", "sessions", "blocks", "frames", "therapists", "clinics")):
    conn = store.connect(db)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_and_api_is_refused_without_a_session(client, clinic_db, path):
    r = client.get(path.format(**clinic_db[1]), follow_redirects=False)
    if path.startswith("/api/"):
        assert r.status_code == 401 and r.json() == {"error": "sign in first"}
    else:
        assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert "P-001" not in r.text and "P-002" not in r.text


def test_forged_and_expired_session_cookies_are_refused(client, clinic_db):
    db, ids = clinic_db
    for forged in ["x", "A" * 43, "' OR 1=1 --", "A" * 5000]:
        client.cookies.set("hl_session", forged)
        assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert sign_in(client).status_code == 303
    assert client.get("/").status_code == 200
    conn = store.connect(db)  # the session was last used longer ago than the idle limit
    conn.execute("UPDATE web_sessions SET seen_s = seen_s - ?", (auth.IDLE_S + 1,))
    conn.close()
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(client).status_code == 303
    conn = store.connect(db)  # signed in for longer than a working day, even if used all along
    conn.execute("UPDATE web_sessions SET created_s = created_s - ?", (auth.MAX_S + 1,))
    conn.close()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_every_form_and_websocket_without_a_session_are_refused(client, clinic_db):
    before = table_counts(clinic_db[0])
    for path in FORMS:
        r = client.post(path.format(**clinic_db[1]), data={"csrf": "x", **({} if path == "/signout" else {"label": "P-NOBODY"})},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/signin", path
    assert table_counts(clinic_db[0]) == before
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect(f"/ws/live/{clinic_db[1]['b1']}", headers=WS_ORIGIN) as ws:
            ws.receive_json()


def test_the_signed_in_therapist_sees_their_clinic_only(ann, clinic_db):
    ids = clinic_db[1]
    home = ann.get("/")
    assert home.status_code == 200 and "P-001" in home.text and "P-002" not in home.text
    assert ann.get(f"/patients/{ids['p1']}").status_code == 200
    s = ann.get(f"/sessions/{ids['s1']}")
    assert s.status_code == 200 and "<svg" in s.text and "Block 1" in s.text  # the report's content
    for path in (f"/patients/{ids['p2']}", f"/sessions/{ids['s2']}", f"/live/{ids['b2']}"):
        other, missing = ann.get(path), ann.get(path.rsplit("/", 1)[0] + "/987654")
        # another clinic's record looks exactly like one that does not exist
        assert other.status_code == missing.status_code == 404 and other.text == missing.text
        assert "P-002" not in other.text
    with ann.websocket_connect(f"/ws/live/{ids['b1']}", headers=WS_ORIGIN) as ws:
        assert ws.receive_json()["block"] == ids["b1"]  # their own block streams
    with pytest.raises(WebSocketDisconnect):
        with ann.websocket_connect(f"/ws/live/{ids['b2']}", headers=WS_ORIGIN) as ws:
            ws.receive_json()


def test_a_websocket_from_another_origin_is_refused(ann, clinic_db):
    for headers in ({"origin": "http://evil.example"}, {}):
        with pytest.raises(WebSocketDisconnect):
            with ann.websocket_connect(f"/ws/live/{clinic_db[1]['b1']}", headers=headers) as ws:
                ws.receive_json()


@pytest.mark.parametrize("bad", BAD)
def test_injection_and_traversal_strings_in_every_parameter(ann, clinic_db, bad):
    db, _ = clinic_db
    before = table_counts(db)
    for route in ("/patients/", "/sessions/", "/live/", "/static/"):
        r = ann.get(route + bad, follow_redirects=False)
        assert r.status_code in (404, 400), (route, bad, r.status_code)
        assert "P-001" not in r.text and "root:" not in r.text
    with pytest.raises(WebSocketDisconnect):
        with ann.websocket_connect("/ws/live/" + bad, headers=WS_ORIGIN) as ws:
            ws.receive_json()
    # in the sign-in form: no account is reached by injection
    other = TestClient(ann.app, base_url="http://testserver")
    r = sign_in(other, user=bad, password=bad + "-long-enough")
    assert r.status_code in (401, 429) and "hl_session" not in r.cookies
    r = sign_in(other, user="ann", password=bad + "' OR '1'='1")
    assert r.status_code in (401, 429) and "hl_session" not in r.cookies
    assert table_counts(db) == before


def device_token(ann, clinic_db) -> str:
    """A real pairing of P-001 through ann's dashboard form."""
    page = ann.get(f"/patients/{clinic_db[1]['p1']}")
    made = ann.post(f"/patients/{clinic_db[1]['p1']}/pair", data={"csrf": csrf_of(page.text)})
    code = made.text.split('id="pair-code">')[1].split("<")[0]
    r = ann.post("/api/device/pair", json={"code": code, "name": "security test"})
    assert r.status_code == 200
    return r.json()["token"]


def test_device_routes_need_a_device_token_and_a_therapist_cookie_is_not_one(ann, clinic_db):
    fresh = TestClient(ann.app, base_url="http://testserver")
    before = table_counts(clinic_db[0])
    for method, path in DEVICE_ROUTES:
        for c, headers in ((fresh, {}), (ann, {}),  # nothing; the signed-in therapist's cookie alone
                           (fresh, {"authorization": "Bearer " + "A" * 43}), (fresh, {"authorization": "Bearer ' OR 1=1 --"}),
                           (fresh, {"authorization": "Basic YW5uOmFubi1zZWNyZXQtcHctMQ=="}),
                           (fresh, {"authorization": "Bearer " + "A" * 5000})):
            r = c.request(method, path, headers=headers, json={"uuid": U})
            assert r.status_code == 401 and "pair it again" in r.json()["error"], (method, path, headers)
    assert table_counts(clinic_db[0]) == before
    token = device_token(ann, clinic_db)
    # and a device token opens none of the therapist's pages or APIs
    for path in PAGES:
        r = fresh.get(path.format(**clinic_db[1]), headers={"authorization": f"Bearer {token}"}, follow_redirects=False)
        assert r.status_code in (303, 401) and "P-001" not in r.text, path


@pytest.mark.parametrize("bad", BAD)
def test_injection_and_traversal_strings_in_device_parameters(ann, clinic_db, bad):
    token = {"authorization": f"Bearer {device_token(ann, clinic_db)}"}
    before = table_counts(clinic_db[0])
    for method, path in [("GET", "/api/device/uploads/{}"), ("POST", "/api/device/uploads/{}/finish"),
                         ("POST", "/api/device/live/{}"), ("POST", "/api/device/uploads/{}/chunks/0"),
                         ("POST", f"/api/device/uploads/{U}/chunks/{{}}")]:
        r = ann.request(method, path.format(bad), headers=token, content=b"{}")
        assert r.status_code in (400, 404), (path, bad, r.status_code)
        assert "P-00" not in r.text and "root:" not in r.text
    r = ann.post("/api/device/uploads", headers=token, json={"uuid": bad, "total_bytes": 10, "chunk_bytes": 10,
                                                              "sha256": "0" * 64, "chunks": ["0" * 64]})
    assert r.status_code in (400, 404)
    assert ann.post("/api/device/pair", json={"code": bad}).status_code in (403, 429)
    assert table_counts(clinic_db[0]) == before


def test_oversize_and_truncated_uploads_are_refused(ann, clinic_db):
    token = {"authorization": f"Bearer {device_token(ann, clinic_db)}"}
    before = table_counts(clinic_db[0])
    big = ann.post("/api/device/uploads", headers=token, json={
        "uuid": U, "total_bytes": 10 ** 10, "chunk_bytes": 2 ** 20, "sha256": "0" * 64, "chunks": ["0" * 64]})
    assert big.status_code == 413
    payload = b"x" * 3000
    import hashlib
    m = {"uuid": U, "total_bytes": 3000, "chunk_bytes": 1000, "sha256": hashlib.sha256(payload).hexdigest(),
         "chunks": [hashlib.sha256(payload[i:i + 1000]).hexdigest() for i in (0, 1000, 2000)]}
    assert ann.post("/api/device/uploads", headers=token, json=m).json()["have"] == []
    over = ann.post(f"/api/device/uploads/{U}/chunks/0", headers=token, content=b"x" * (2 ** 20 + 1))
    assert over.status_code == 413  # over the chunk limit: refused before it is read
    cut = ann.post(f"/api/device/uploads/{U}/chunks/0", headers=token, content=payload[:999])
    assert cut.status_code == 422
    assert ann.post(f"/api/device/uploads/{U}/chunks/1", headers=token, content=payload[1000:2000]).status_code == 200
    r = ann.post(f"/api/device/uploads/{U}/finish", headers=token)
    assert r.status_code == 409 and r.json()["missing"] == [0, 2]
    huge = ann.post(f"/api/device/live/{U}", headers=token, content=b"[" * (5 * 2 ** 20))
    assert huge.status_code == 413
    assert table_counts(clinic_db[0]) == before


def test_static_files_cannot_reach_outside_their_folder(ann):
    for path in ("/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e/app.py", "/static/app.py",
                 "/static/templates%2Fbase.html", "/static//etc/passwd"):
        r = ann.get(path)
        assert r.status_code == 404 and "create_app" not in r.text and "root:" not in r.text, path
    assert ann.get("/static/live.js").status_code == 200


def test_forged_csrf_tokens_are_refused(client):
    page = client.get("/signin")
    for forged in ("", "x" * 43, csrf_of(page.text)[:-1] + "A"):
        r = client.post("/signin", data={"username": "ann", "password": PASSWORDS["ann"], "csrf": forged},
                        follow_redirects=False)
        assert r.status_code == 403 and "hl_session" not in r.cookies
    client.cookies.delete("hl_signin_csrf")  # a token without its cookie (another site's form)
    r = client.post("/signin", data={"username": "ann", "password": PASSWORDS["ann"], "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 403
    assert sign_in(client).status_code == 303
    home = client.get("/")
    for forged in ("", "nope", csrf_of(page.text)):  # another form's token is not this session's
        r = client.post("/signout", data={"csrf": forged}, follow_redirects=False)
        assert r.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200  # still signed in
    r = client.post("/signout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303  # signed out for real


def test_sign_in_is_rate_limited(clinic_db):
    from host.server.app import create_app
    now = [1000.0]
    app = create_app(clinic_db[0], limiter=auth.SignInLimiter(max_failures=5, window_s=300, clock=lambda: now[0]))
    c = TestClient(app, base_url="http://testserver")
    for _ in range(5):
        assert sign_in(c, password="wrong-password!").status_code == 401
    r = sign_in(c)  # the right password, but too many failures just before
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text and "hl_session" not in r.cookies
    assert sign_in(c, user="bob").status_code == 429  # the same client address, another user name
    now[0] += 301
    assert sign_in(c).status_code == 303


def test_oversize_bodies_and_other_methods_are_refused(client):
    page = client.get("/signin")
    r = client.post("/signin", data={"username": "ann", "password": "x" * 20000, "csrf": csrf_of(page.text)})
    assert r.status_code == 413
    assert client.request("PUT", "/").status_code == 405
    assert client.request("DELETE", "/patients/1").status_code == 405


def test_responses_carry_the_security_headers_and_cookie_flags(client):
    r = sign_in(client)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


# ---- the same on a real server: `hiplevel serve` (uvicorn) on loopback ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(clinic_db):
    port = free_port()
    proc = subprocess.Popen(hiplevel("serve", "--db", clinic_db[0], "--port", port), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/signin", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(10)


def test_real_server_refuses_every_route_without_a_session(served, clinic_db):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus
    ids = clinic_db[1]
    for path in PAGES:
        r = httpx.get(served + path.format(**ids), follow_redirects=False)
        assert r.status_code in (303, 401) and "P-001" not in r.text, path
    for path in FORMS:
        assert httpx.post(served + path.format(**ids), data={"csrf": "x", "label": "P-NOBODY"}).status_code == 303, path

    async def ws_refused():
        with pytest.raises(InvalidStatus) as e:
            async with connect(served.replace("http", "ws") + f"/ws/live/{ids['b1']}",
                                          origin=served):
                pass
        return e.value.response.status_code
    assert asyncio.run(ws_refused()) == 403


def test_real_server_cross_clinic_injection_and_csrf(served, clinic_db):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus
    ids = clinic_db[1]
    with httpx.Client(base_url=served) as c:
        assert sign_in(c, user="bob").status_code == 303  # bob works at South: P-002
        assert c.get("/").status_code == 200 and "P-002" in c.get("/").text
        for path in (f"/patients/{ids['p1']}", f"/sessions/{ids['s1']}", f"/live/{ids['b1']}"):
            assert c.get(path).status_code == 404
        for bad in BAD:
            assert c.get("/patients/" + bad).status_code in (400, 404)
        assert c.post("/signout", data={"csrf": "forged"}).status_code == 403
        cookie = c.cookies["hl_session"]

    async def ws(block):
        async with connect(served.replace("http", "ws") + f"/ws/live/{block}", origin=served,
                                      additional_headers={"cookie": f"hl_session={cookie}"}) as w:
            return await asyncio.wait_for(w.recv(), 10)
    assert '"block"' in asyncio.run(ws(ids["b2"]))  # bob's own block streams
    with pytest.raises(Exception) as e:
        asyncio.run(ws(ids["b1"]))
    assert "403" in str(e.value)
