"""Home installations and the clinic, through the real app (Starlette's TestClient) on both backends:
a therapist makes a one-time code, a device pairs with it, fetches its patient's programme, uploads
a session recorded at home (by the real recorder) in checked, resumable chunks, streams a running
session live, and is refused everything else: reused, expired and guessed codes, damaged and cut-short
uploads, another patient's upload ids, a revoked token."""
import gzip
import hashlib
import json

import pytest

from host import store
from host.session import programme as pg
from host.session import transfer
from host.sinks import clinic_link as cl
from tests.server.conftest import WS_ORIGIN, TestClient, csrf_of, new_clinic_db, sign_in
from tests.server.test_security import table_counts
from tests.support.clinic import record_session


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(request, tmp_path_factory):
    """This module's own database: its pairings and uploads stay out of the package's clinic_db."""
    return new_clinic_db(request, tmp_path_factory, "devclinic")


@pytest.fixture(scope="module")
def home_db(tmp_path_factory):
    """A home installation's own store with one finished session of P-001 (recorded as `run` does)."""
    db = tmp_path_factory.mktemp("home") / "sessions.sqlite"
    sid = record_session(db, "P-001", drops=(7.0, 3.0, 6.5), seed=11)
    return db, sid


@pytest.fixture
def web(clinic):
    from host.server.app import create_app
    with TestClient(create_app(clinic[0]), base_url="http://testserver") as c:
        yield c


def pair_code(web, pid) -> str:
    assert sign_in(web).status_code == 303
    page = web.get(f"/patients/{pid}")
    assert page.status_code == 200 and "No home installation is paired" in page.text or "device-list" in page.text
    r = web.post(f"/patients/{pid}/pair", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200
    code = r.text.split('id="pair-code">')[1].split("<")[0]
    assert f"hiplevel pair http://testserver {code}" in r.text
    return code


def paired(web, pid, name="kitchen laptop") -> str:
    r = web.post("/api/device/pair", json={"code": pair_code(web, pid).lower().replace("-", " "), "name": name})
    assert r.status_code == 200, r.text
    assert r.json()["patient"] == "P-001" and r.json()["clinic"] == "North"
    return r.json()["token"]


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def manifest(payload: bytes, uuid_: str, chunk: int) -> dict:
    chunks = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
    return {"uuid": uuid_, "total_bytes": len(payload), "chunk_bytes": chunk,
            "sha256": hashlib.sha256(payload).hexdigest(), "chunks": [hashlib.sha256(c).hexdigest() for c in chunks]}


def counts(db):
    return table_counts(db, ("sessions", "blocks", "frames", "events", "reps", "devices"))


def test_a_code_pairs_one_device_once_and_only_for_its_patient(web, clinic):
    db, ids = clinic
    code = pair_code(web, ids["p1"])
    conn = store.connect(db)
    stored = [r[0] for r in conn.execute("SELECT code_sha256 FROM pair_codes")]
    conn.close()
    assert code.replace("-", "") not in str(stored) and code not in str(stored)  # only its digest is kept
    r = web.post("/api/device/pair", json={"code": code, "name": "tablet"})
    assert r.status_code == 200 and r.json()["patient"] == "P-001"
    again = web.post("/api/device/pair", json={"code": code, "name": "another"})
    assert again.status_code == 403 and "was used already" in again.json()["error"]
    page = web.get(f"/patients/{ids['p1']}")
    assert "tablet" in page.text and "Revoke" in page.text
    # another clinic's patient: no code is made (ann is in North; P-002 is South's)
    other = web.post(f"/patients/{ids['p2']}/pair", data={"csrf": csrf_of(page.text)})
    assert other.status_code == 404


def test_expired_and_guessed_codes_are_refused_and_guessing_is_rate_limited(web, clinic):
    db, ids = clinic
    code = pair_code(web, ids["p1"])
    conn = store.connect(db)
    conn.execute("UPDATE pair_codes SET expires_s = expires_s - 3600 WHERE used_s IS NULL")
    conn.close()
    before = counts(db)["devices"]
    assert web.post("/api/device/pair", json={"code": code}).status_code == 403
    answers = [web.post("/api/device/pair", json={"code": f"ABCD{k:04d}".replace("0", "A").replace("1", "B")}).status_code
               for k in range(8)]
    assert 429 in answers and set(answers) <= {403, 429}
    assert counts(db)["devices"] == before


def test_the_device_fetches_its_patients_programme(web, clinic):
    db, ids = clinic
    token = paired(web, ids["p1"])
    r = web.get("/api/device/programme", headers=bearer(token))
    if r.status_code == 404:  # no programme yet: said, then one is written
        assert "not written a programme" in r.json()["error"]
        conn = store.connect(db)
        pg.save(conn, "P-001", pg.from_toml('[[item]]\nexercise = "hip-dip"\nstance = "left"\nreps = 8\n'))
        conn.close()
        r = web.get("/api/device/programme", headers=bearer(token))
    assert r.status_code == 200 and r.json()["patient"] == "P-001"
    assert pg.from_toml(r.json()["toml"]).items[0].exercise == "hip-dip"


def test_an_upload_in_chunks_resumes_checks_each_chunk_and_arrives_once(web, clinic, home_db):
    db, ids = clinic
    token = paired(web, ids["p1"])
    home, sid = home_db
    hconn = store.connect(home)
    uuid_ = cl.upload_uuid(hconn, sid)
    payload = transfer.export_session(hconn, sid, uuid_)
    local = store.get_session(hconn, sid)
    hconn.close()
    m = manifest(payload, uuid_, 16 * 1024)
    n = len(m["chunks"])
    assert n >= 3
    st = web.post("/api/device/uploads", json=m, headers=bearer(token)).json()
    assert st == {"have": [], "chunks": n, "done": False}
    chunk = lambda i: payload[i * 16384:(i + 1) * 16384]
    # a damaged chunk and a cut-short one are refused; nothing of them is kept
    bad = bytearray(chunk(1))
    bad[100] ^= 0xFF
    assert web.post(f"/api/device/uploads/{uuid_}/chunks/1", content=bytes(bad), headers=bearer(token)).status_code == 422
    assert web.post(f"/api/device/uploads/{uuid_}/chunks/1", content=chunk(1)[:-5], headers=bearer(token)).status_code == 422
    # chunks out of order and one twice, then the connection "drops": finish says what is missing
    for i in (2, 0, 2):
        assert web.post(f"/api/device/uploads/{uuid_}/chunks/{i}", content=chunk(i), headers=bearer(token)).status_code == 200
    before = counts(db)
    r = web.post(f"/api/device/uploads/{uuid_}/finish", headers=bearer(token))
    assert r.status_code == 409 and 1 in r.json()["missing"] and 0 not in r.json()["missing"]
    assert counts(db) == before  # a truncated upload stores nothing
    # resumed: the status (and the manifest sent again) say what the clinic has
    assert web.get(f"/api/device/uploads/{uuid_}", headers=bearer(token)).json()["have"] == [0, 2]
    assert web.post("/api/device/uploads", json=m, headers=bearer(token)).json()["have"] == [0, 2]
    for i in range(n):
        if i not in (0, 2):
            web.post(f"/api/device/uploads/{uuid_}/chunks/{i}", content=chunk(i), headers=bearer(token))
    done = web.post(f"/api/device/uploads/{uuid_}/finish", headers=bearer(token)).json()
    remote = done["session_id"]
    conn = store.connect(db)
    s = store.get_session(conn, remote)
    assert s.patient == "P-001" and s.ended_utc == local.ended_utc and s.reps == local.reps > 0
    assert [b.frame_count for b in s.blocks] == [b.frame_count for b in local.blocks]
    assert [b.end for b in s.blocks] == [b.end for b in local.blocks]
    hconn = store.connect(home)
    for a, b in zip(local.blocks, s.blocks):
        assert list(store.frames(hconn, a.id)) == list(store.frames(conn, b.id))  # every frame, byte for byte
    assert conn.execute("SELECT count(*) FROM upload_chunks").fetchone()[0] == 0
    conn.close()
    hconn.close()
    # idempotent: the same session again (finish, or a new manifest) is the same session, not a second
    after = counts(db)
    assert web.post(f"/api/device/uploads/{uuid_}/finish", headers=bearer(token)).json()["session_id"] == remote
    assert web.post("/api/device/uploads", json=m, headers=bearer(token)).json() == {"session_id": remote, "done": True}
    assert counts(db) == after
    # the therapist sees it in the patient's history, with its report
    assert f'href="/sessions/{remote}"' in web.get(f"/patients/{ids['p1']}").text
    assert "<svg" in web.get(f"/sessions/{remote}").text


def test_a_damaged_document_with_matching_checksums_is_refused_whole(web, clinic):
    db, ids = clinic
    token = paired(web, ids["p1"])
    before = counts(db)
    good = json.loads(gzip.decompress(transfer.export_session(store.connect(db), ids["s1"], "a" * 32)))
    cases = {
        "not gzip": b"this is not a session at all",
        "cut short": gzip.compress(json.dumps(good).encode())[:-40],
        "absurd frame": gzip.compress(json.dumps({**good, "blocks": [{**good["blocks"][0],
                                                  "frames": [[float("nan"), "AAAA", 0]]}]}).encode()),
        "bad event": gzip.compress(json.dumps({**good, "blocks": [{**good["blocks"][0],
                                               "events": [[1.0, "{not json"]]}]}).encode()),
        "other uuid": gzip.compress(json.dumps({**good, "uuid": "b" * 32}).encode()),
        "not ended": gzip.compress(json.dumps({**good, "ended_utc": None}).encode()),
    }
    for k, (why, payload) in enumerate(cases.items()):
        uuid_ = f"{k:x}" * 32
        m = manifest(payload, uuid_, 64 * 1024)
        web.post("/api/device/uploads", json=m, headers=bearer(token))
        for i in range(len(m["chunks"])):
            web.post(f"/api/device/uploads/{uuid_}/chunks/{i}", content=payload[i * 65536:(i + 1) * 65536],
                     headers=bearer(token))
        r = web.post(f"/api/device/uploads/{uuid_}/finish", headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"].startswith("refused"), why
        assert web.get(f"/api/device/uploads/{uuid_}", headers=bearer(token)).status_code == 404, why  # start again
    assert counts(db) == before


def test_a_device_reaches_nothing_of_another_patient_and_a_revoked_one_nothing(web, clinic, home_db):
    db, ids = clinic
    token = paired(web, ids["p1"])
    conn = store.connect(db)  # a session of South's P-002 that arrived with an upload id
    conn.execute("UPDATE sessions SET upload_uuid = ? WHERE id = ?", ("c" * 32, ids["s2"]))
    conn.close()
    r = web.get(f"/api/device/uploads/{'c' * 32}", headers=bearer(token))
    assert r.status_code == 409 and "P-002" not in r.text
    live = web.post(f"/api/device/live/{'c' * 32}", headers=bearer(token), json={"blocks": []})
    assert live.status_code == 409
    # the dashboard's pages and APIs take no device token
    for path in ("/", f"/patients/{ids['p1']}", "/api/live"):
        fresh = TestClient(web.app, base_url="http://testserver")
        assert fresh.get(path, headers=bearer(token), follow_redirects=False).status_code in (303, 401)
    # revoked on the patient's page: the token is refused from then on
    page = web.get(f"/patients/{ids['p1']}")
    conn = store.connect(db)
    did = conn.execute("SELECT id FROM devices WHERE token_sha256 = ?", (cl_digest(token),)).fetchone()[0]
    conn.close()
    r = web.post(f"/patients/{ids['p1']}/devices/{did}/revoke", data={"csrf": csrf_of(page.text)},
                 follow_redirects=False)
    assert r.status_code == 303
    refused = web.get("/api/device/programme", headers=bearer(token))
    assert refused.status_code == 401 and "pair it again" in refused.json()["error"]


def cl_digest(token):
    from host.server import auth
    return auth.digest(token)


def test_a_live_home_session_streams_into_the_live_view_and_its_upload_completes_it(web, clinic, home_db):
    db, ids = clinic
    token = paired(web, ids["p1"])
    home, sid = home_db
    hconn = store.connect(home)
    s = store.get_session(hconn, sid)
    b = s.blocks[0]
    frames = [[t, __import__("base64").b64encode(d).decode(), int(late)] for t, d, late in store.frames(hconn, b.id)]
    events = [[r[0], r[1]] for r in hconn.execute("SELECT t_host_s, json FROM events WHERE block_id = ? ORDER BY id",
                                                   (b.id,))]
    uuid_ = "d" * 32
    payload = transfer.export_session(hconn, sid, uuid_)
    hconn.close()
    head = {"started_utc": s.started_utc, "source": "home: simulated sensor", "app_version": s.app_version}
    half = len(frames) // 2
    body = lambda ff, fr, ef, ev: {**head, "blocks": [{"number": 1, "started_utc": b.started_utc, "settings": b.settings,
                                                       "frames_from": ff, "frames": fr, "events_from": ef, "events": ev}]}
    r = web.post(f"/api/device/live/{uuid_}", headers=bearer(token), json=body(0, frames[:half], 0, events[:2]))
    assert r.status_code == 200 and r.json()["blocks"]["1"] == {"frames": half, "events": 2}
    # a repeat (the answer was lost) and a gap are not inserted; the answer says where to go on
    assert web.post(f"/api/device/live/{uuid_}", headers=bearer(token),
                    json=body(0, frames[:half], 0, events[:2])).json()["blocks"]["1"] == {"frames": half, "events": 2}
    assert web.post(f"/api/device/live/{uuid_}", headers=bearer(token),
                    json=body(half + 5, frames[half + 5:], 2, [])).json()["blocks"]["1"]["frames"] == half
    live = web.get("/api/live").json()["live"]
    mine = [x for x in live if x["source"] == "home: simulated sensor"]
    assert len(mine) == 1 and mine[0]["patient"] == "P-001" and mine[0]["frames"] == half
    with web.websocket_connect(f"/ws/live/{mine[0]['block_id']}", headers=WS_ORIGIN) as ws:
        m = ws.receive_json()
        assert m["block"] == mine[0]["block_id"]
    remote = mine[0]["session_id"]
    # the finished upload under the same id replaces the live rows with the checked whole
    m = manifest(payload, uuid_, 1024 * 1024)
    web.post("/api/device/uploads", json=m, headers=bearer(token))
    web.post(f"/api/device/uploads/{uuid_}/chunks/0", content=payload, headers=bearer(token))
    assert web.post(f"/api/device/uploads/{uuid_}/finish", headers=bearer(token)).json()["session_id"] == remote
    conn = store.connect(db)
    whole = store.get_session(conn, remote)
    conn.close()
    assert whole.ended_utc is not None and whole.blocks[0].frame_count == len(frames) and whole.reps == s.reps
    assert not [x for x in web.get("/api/live").json()["live"] if x["session_id"] == remote]
    assert web.post(f"/api/device/live/{uuid_}", headers=bearer(token), json=body(0, [], 0, [])).status_code == 409
