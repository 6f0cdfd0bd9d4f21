"""Home installations and the clinic: pairing, the device API, checked uploads, live home sessions.

In: two kinds of caller. A signed-in therapist's forms (CSRF token on each, through app.py's
`signed_in_db`): `POST /patients/{pid}/pair` makes a one-time code for that patient (8 letters and
digits, valid PAIR_CODE_S, single use, stored only as its SHA-256) and shows it once;
`POST /patients/{pid}/devices/{did}/revoke` ends a device's pairing. And a home installation
(host.sinks.clinic_link) with `Authorization: Bearer TOKEN`: no cookie is looked at and a cookie
alone reaches nothing here (so there is nothing for CSRF to forge); the token is random, stored as
its SHA-256, and names one device of one patient. Everything a device reaches is that patient's:
its programme, and uploads and live sessions under its own upload ids.

    POST /api/device/pair                     {"code", "name"} -> {"token", "patient", "clinic"}
    GET  /api/device/programme                -> {"patient", "version", "toml"}, 404: none yet
    POST /api/device/uploads                  manifest -> {"have": [chunk indices]} | {"session_id"}
    GET  /api/device/uploads/{uuid}           -> the same status
    POST /api/device/uploads/{uuid}/chunks/{i}  the chunk's bytes, checked against the manifest
    POST /api/device/uploads/{uuid}/finish    -> {"session_id"}
    POST /api/device/live/{uuid}              a running session's new frames and events

Out: rows in the store. An upload is a session document (host.session.transfer) sent as a manifest
(its size, SHA-256 and each chunk's SHA-256), then chunks in any order and as often as needed (a
dropped connection resumes from the status), then `finish`: the chunks are joined, the whole SHA-256
checked, the document checked field by field and inserted in one transaction; anything wrong
refuses it whole and nothing is stored. A session's upload id makes it idempotent: an upload of a
session already stored answers with that session. A live home session (the patient said yes on the
home machine) is inserted block by block as it streams, so the dashboard's live view tails it like
a station's; its finished upload then replaces those rows with the checked whole.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.requests import ClientDisconnect

from host import store
from host.server import auth
from host.server.programmes import patient_post
from host.session import programme as pg
from host.session import transfer

PAIR_CODE_S = 15 * 60.0
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud or typed from a screen
CODE_LENGTH = 8
NAME_MAX = 60
CHUNK_MAX_BYTES = 1024 * 1024
UPLOAD_MAX_BYTES = 256 * 1024 * 1024
OPEN_UPLOADS_MAX = 20          # unfinished uploads one device may keep on the server
LIVE_MAX_BYTES = 4 * 1024 * 1024
MANIFEST_MAX_BYTES = 64 * 1024
_SHA = re.compile(r"[0-9a-f]{64}")
CHUNK_POST = re.compile(r"/api/device/uploads/[^/]+/chunks/[^/]+")
LIVE_POST = re.compile(r"/api/device/live/[^/]+")
NOT_PAIRED = "this installation is not paired with the clinic, or its pairing was revoked: pair it again"


def body_cap(path: str) -> int | None:
    """The body limit of a device route (app.py's guard), None for the dashboard's own routes."""
    if CHUNK_POST.fullmatch(path):
        return CHUNK_MAX_BYTES
    if LIVE_POST.fullmatch(path):
        return LIVE_MAX_BYTES
    if path.startswith("/api/device/"):
        return MANIFEST_MAX_BYTES
    return None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def shown_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normal_code(text: str) -> str | None:
    """A typed code without its dash, spaces and case; None when it cannot be one."""
    code = re.sub(r"[\s-]", "", str(text)).upper()
    return code if len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code) else None


def _error(status: int, words: str, **more) -> JSONResponse:
    return JSONResponse({"error": words, **more}, status_code=status)


class _Refused(Exception):
    def __init__(self, status: int, words: str, **more):
        self.response = _error(status, words, **more)


@contextlib.contextmanager
def refused_as_422():
    """A document the store cannot take (transfer.UploadError) is the device's 422, in its words."""
    try:
        yield
    except transfer.UploadError as e:
        raise _Refused(422, f"refused: {e}") from None


def router(signed_in_db, render, db_conn, limiter: auth.SignInLimiter) -> APIRouter:
    from host.server.app import parse_id  # app.py includes this router: import late

    r = APIRouter()

    # ---- the dashboard: pair and revoke ----
    @r.post("/patients/{pid}/pair")
    async def pair_code(request: Request, pid: str):
        def handle(form, c, t, csrf, p, label):
            code = new_code()
            expires = time.time() + PAIR_CODE_S
            store.add_pair_code(c, auth.digest(code), p, t.id, expires)
            return render(request, "pair_code.html", me=t, csrf=csrf, pid=p, label=label, code=shown_code(code),
                          minutes=int(PAIR_CODE_S // 60), url=str(request.base_url).rstrip("/"),
                          expires_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)))
        return await patient_post(signed_in_db, request, pid, 2, handle)

    @r.post("/patients/{pid}/devices/{did}/revoke")
    async def revoke(request: Request, pid: str, did: str):
        def handle(form, c, t, csrf, p, label):
            store.revoke_device(c, parse_id(did), p)  # another patient's device: nothing changes
            return RedirectResponse(f"/patients/{p}#devices", status_code=303)
        return await patient_post(signed_in_db, request, pid, 2, handle)

    # ---- the device API ----
    async def device_of(request: Request) -> store.Device:
        """The device whose token the request carries; refused (401) before anything else is read."""
        header = request.headers.get("authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        if not token or len(token) > 100:
            raise _Refused(401, NOT_PAIRED)

        def look():
            c = db_conn()
            try:
                return store.device_of_token(c, auth.digest(token))
            finally:
                c.close()
        dev = await asyncio.to_thread(look)
        if dev is None:
            raise _Refused(401, NOT_PAIRED)
        return dev

    async def upload_of(request: Request, uid: str) -> tuple[store.Device, str]:
        """(device, upload id) of a route under an upload id: the token first, so a caller without
        one learns nothing about ids."""
        dev = await device_of(request)
        return dev, uuid_of(uid)

    def on_db(dev: store.Device, work):
        """work(conn, device) on a worker thread with its own connection."""
        def run():
            c = db_conn()
            try:
                return work(c, dev)
            finally:
                c.close()
        return asyncio.to_thread(run)

    async def json_body(request: Request, cap: int):
        try:
            body = await request.body()
        except ClientDisconnect:
            raise _Refused(400, "the request was cut short") from None
        if len(body) > cap:
            raise _Refused(413, "the request is too large")
        try:
            d = json.loads(body)
        except ValueError:
            raise _Refused(400, "the request is not JSON") from None
        if not isinstance(d, dict):
            raise _Refused(400, "the request is not a JSON object")
        return d

    def refusing(handler):
        """Device routes answer in JSON, a refusal too (the installation says it to its user)."""
        @functools.wraps(handler)
        async def wrapped(*a, **k):
            try:
                return await handler(*a, **k)
            except _Refused as e:
                return e.response
            except store.StoreError as e:
                return _error(503, f"the clinic's database could not be used ({e})")
            except store.DB_ERRORS as e:
                return _error(503, f"the clinic's database could not be used ({store.explain(e, 'database')})")
        return wrapped

    @r.post("/api/device/pair")
    @refusing
    async def pair(request: Request):
        ip = request.client.host if request.client else "?"
        wait = limiter.wait_s(f"pair:{ip}")
        if wait > 0:
            raise _Refused(429, f"too many wrong codes; try again in {int(wait) + 1} s")
        d = await json_body(request, MANIFEST_MAX_BYTES)
        code = normal_code(d.get("code", ""))
        name = str(d.get("name", "home installation")).strip()[:NAME_MAX] or "home installation"
        if not name.isprintable():
            raise _Refused(400, "the installation's name has characters that cannot be shown")

        def work():
            c = db_conn()
            try:
                with store.transaction(c):
                    patient_id_ = store.use_pair_code(c, auth.digest(code), time.time()) if code else None
                    if patient_id_ is None:
                        return None
                    token = secrets.token_urlsafe(32)
                    store.add_device(c, patient_id_, name, auth.digest(token))
                    row = c.execute("SELECT p.label, c.name FROM patients p LEFT JOIN clinics c ON c.id = p.clinic_id "
                                    "WHERE p.id = ?", (patient_id_,)).fetchone()
                    return {"token": token, "patient": row[0], "clinic": row[1]}
            finally:
                c.close()
        out = await asyncio.to_thread(work)
        if out is None:
            limiter.failed(f"pair:{ip}")
            raise _Refused(403, "that code is not valid: it is wrong, was used already or is older than "
                                f"{int(PAIR_CODE_S // 60)} minutes; ask for a new one")
        return out

    @r.get("/api/device/programme")
    @refusing
    async def programme(request: Request):
        def work(c, dev):
            try:
                s = pg.load(c, dev.patient)
            except pg.ProgrammeError:
                raise _Refused(409, "the clinic's programme cannot be read by this version of hiplevel") from None
            if s is None:
                raise _Refused(404, "the clinic has not written a programme for this patient yet")
            return {"patient": dev.patient, "version": s.version, "created_utc": s.created_utc,
                    "toml": pg.to_toml(s.programme, header=f"programme of {dev.patient}, version {s.version}")}
        return await on_db(await device_of(request), work)

    def upload_row(c, dev, uuid_: str):
        return c.execute("SELECT id, total_bytes, sha256, chunk_bytes, chunks_json, session_id FROM uploads "
                         "WHERE device_id = ? AND uuid = ?", (dev.id, uuid_)).fetchone()

    def status(c, dev, uuid_: str) -> dict:
        done = store.session_by_upload_uuid(c, uuid_)
        if done is not None and done[2] is not None:  # stored whole (ended), from any device of the patient
            if done[1] != dev.patient_id:
                raise _Refused(409, "that upload id belongs to another patient's session")
            return {"session_id": done[0], "done": True}
        row = upload_row(c, dev, uuid_)
        if row is None:
            raise _Refused(404, "no such upload: send its manifest first")
        have = [x[0] for x in c.execute("SELECT idx FROM upload_chunks WHERE upload_id = ? ORDER BY idx", (row[0],))]
        return {"have": have, "chunks": len(json.loads(row[4])), "done": False}

    def uuid_of(text: str) -> str:
        try:
            return transfer.check_uuid(text)
        except transfer.UploadError as e:
            raise _Refused(404, str(e)) from None

    @r.post("/api/device/uploads")
    @refusing
    async def manifest(request: Request):
        dev = await device_of(request)
        d = await json_body(request, MANIFEST_MAX_BYTES)
        uuid_ = uuid_of(d.get("uuid"))
        total, chunk, whole, chunks = d.get("total_bytes"), d.get("chunk_bytes"), d.get("sha256"), d.get("chunks")
        if not (isinstance(total, int) and isinstance(chunk, int) and 0 < total <= UPLOAD_MAX_BYTES
                and 0 < chunk <= CHUNK_MAX_BYTES):
            raise _Refused(413 if isinstance(total, int) and total > UPLOAD_MAX_BYTES else 400,
                           f"an upload has 1 byte to {UPLOAD_MAX_BYTES // 2**20} MB in chunks of at most "
                           f"{CHUNK_MAX_BYTES // 2**20} MB")
        if not (isinstance(whole, str) and _SHA.fullmatch(whole) and isinstance(chunks, list)
                and len(chunks) == -(-total // chunk) and all(isinstance(h, str) and _SHA.fullmatch(h) for h in chunks)):
            raise _Refused(400, "the manifest's checksums do not describe the upload")

        def work(c, dev):
            try:
                return status(c, dev, uuid_)
            except _Refused as e:
                if e.response.status_code != 404:
                    raise
            with store.transaction(c):
                open_ = c.execute("SELECT count(*) FROM uploads WHERE device_id = ? AND session_id IS NULL",
                                  (dev.id,)).fetchone()[0]
                if open_ >= OPEN_UPLOADS_MAX:
                    raise _Refused(429, f"this installation has {open_} unfinished uploads; finish them first")
                c.execute("INSERT INTO uploads (device_id, uuid, total_bytes, sha256, chunk_bytes, chunks_json, "
                          "started_utc) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, uuid) DO NOTHING",
                          (dev.id, uuid_, total, whole, chunk, json.dumps(chunks), store.utc_now()))
            row = upload_row(c, dev, uuid_)
            if (row[1], row[2], row[3], json.loads(row[4])) != (total, whole, chunk, chunks):
                raise _Refused(409, "an upload with this id but other contents is under way")
            return status(c, dev, uuid_)
        return await on_db(dev, work)

    @r.get("/api/device/uploads/{uid}")
    @refusing
    async def upload_status(request: Request, uid: str):
        dev, uuid_ = await upload_of(request, uid)
        return await on_db(dev, lambda c, dev: status(c, dev, uuid_))

    @r.post("/api/device/uploads/{uid}/chunks/{idx}")
    @refusing
    async def chunk(request: Request, uid: str, idx: str):
        dev, uuid_ = await upload_of(request, uid)
        i = int(idx) if idx.isascii() and idx.isdigit() and len(idx) < 7 else -1
        if i < 0:
            raise _Refused(404, "no such chunk")
        try:
            data = await request.body()
        except ClientDisconnect:
            raise _Refused(400, "the chunk was cut short") from None

        def work(c, dev):
            row = upload_row(c, dev, uuid_)
            if row is None or row[5] is not None:
                return status(c, dev, uuid_)
            hashes = json.loads(row[4])
            if i >= len(hashes):
                raise _Refused(404, "no such chunk")
            size = row[3] if i < len(hashes) - 1 else row[1] - row[3] * (len(hashes) - 1)
            if len(data) != size or hashlib.sha256(data).hexdigest() != hashes[i]:
                raise _Refused(422, f"chunk {i} is damaged or cut short (its length or SHA-256 is not the "
                                    "manifest's); send it again")
            c.execute("INSERT INTO upload_chunks (upload_id, idx, data) VALUES (?, ?, ?) "
                      "ON CONFLICT (upload_id, idx) DO NOTHING", (row[0], i, data))
            return status(c, dev, uuid_)
        return await on_db(dev, work)

    @r.post("/api/device/uploads/{uid}/finish")
    @refusing
    async def finish(request: Request, uid: str):
        dev, uuid_ = await upload_of(request, uid)

        def work(c, dev):
            st = status(c, dev, uuid_)
            if st["done"]:
                return st
            if len(st["have"]) != st["chunks"]:
                missing = sorted(set(range(st["chunks"])) - set(st["have"]))
                raise _Refused(409, f"{len(missing)} of {st['chunks']} chunks have not arrived", missing=missing)
            row = upload_row(c, dev, uuid_)
            payload = b"".join(bytes(x[0]) for x in c.execute(
                "SELECT data FROM upload_chunks WHERE upload_id = ? ORDER BY idx", (row[0],)))
            try:
                if len(payload) != row[1] or hashlib.sha256(payload).hexdigest() != row[2]:
                    raise transfer.UploadError("the joined chunks are not the session that was announced")
                doc = transfer.parse(payload)
                if doc["uuid"] != uuid_:
                    raise transfer.UploadError("the session inside is not the one this upload announced")
                if doc["ended_utc"] is None:
                    raise transfer.UploadError("the session has not ended; a running session is sent live")
            except transfer.UploadError as e:
                c.execute("DELETE FROM uploads WHERE id = ?", (row[0],))  # refused whole: start again
                raise _Refused(422, f"refused: {e}") from None
            with refused_as_422(), store.transaction(c):
                live = store.session_by_upload_uuid(c, uuid_)
                if live is not None and live[1] != dev.patient_id:
                    raise _Refused(409, "that upload id belongs to another patient's session")
                if live is not None and live[2] is not None:  # a finish racing this one stored it
                    return {"session_id": live[0], "done": True}
                sid = transfer.import_session(c, doc, dev.patient, live[0] if live else None)
                c.execute("UPDATE uploads SET session_id = ? WHERE id = ?", (sid, row[0]))
                c.execute("DELETE FROM upload_chunks WHERE upload_id = ?", (row[0],))
            return {"session_id": sid, "done": True}
        return await on_db(dev, work)

    @r.post("/api/device/live/{uid}")
    @refusing
    async def live(request: Request, uid: str):
        dev, uuid_ = await upload_of(request, uid)
        d = await json_body(request, LIVE_MAX_BYTES)

        def work(c, dev):
            with refused_as_422(), store.transaction(c):
                return live_append(c, dev, uuid_, d)
        return await on_db(dev, work)

    return r


def live_append(c, dev: store.Device, uuid_: str, d: dict) -> dict:
    """Insert what a running home session sent (its new frames and events per block, each list
    with the index of its first item); answer how many frames and events of each block the clinic
    has, which is where the installation goes on from (a repeat or a gap is not inserted)."""
    found = store.session_by_upload_uuid(c, uuid_)
    if found is not None and found[1] != dev.patient_id:
        raise _Refused(409, "that upload id belongs to another patient's session")
    if found is not None and found[2] is not None:
        raise _Refused(409, "this session is stored whole already", session_id=found[0])
    blocks = d.get("blocks")
    head = {**d, "format": transfer.FORMAT, "version": transfer.VERSION, "uuid": uuid_, "ended_utc": None,
            "blocks": [{**b, "markers": []} if isinstance(b, dict) else b for b in blocks]
            if isinstance(blocks, list) else None}
    transfer.check_document(head, live=True)
    if found is None:
        sid = store.insert_session(c, dev.patient, head["source"], head["app_version"])
        c.execute("UPDATE sessions SET started_utc = ?, upload_uuid = ? WHERE id = ?", (head["started_utc"], uuid_, sid))
    else:
        sid = found[0]
    counts = {}
    for b in head["blocks"]:
        row = c.execute("SELECT id, frame_count FROM blocks WHERE session_id = ? AND number = ?",
                        (sid, b["number"])).fetchone()
        if row is None:
            if b["number"] != 1 + c.execute("SELECT count(*) FROM blocks WHERE session_id = ?", (sid,)).fetchone()[0]:
                continue  # an earlier block has not arrived: the answer says so
            block_id, n_frames = store.insert_block(c, sid, b["settings"], b["started_utc"]), 0
        else:
            block_id, n_frames = row
        n_events = c.execute("SELECT count(*) FROM events WHERE block_id = ?", (block_id,)).fetchone()[0]
        frames_from, events_from = b.get("frames_from"), b.get("events_from")
        if frames_from == n_frames and b["frames"]:
            transfer.insert_frames(c, block_id, n_frames, b["frames"], store.utc_now())
            n_frames += len(b["frames"])
        if events_from == n_events:
            transfer.insert_events(c, block_id, b["events"])
            n_events += len(b["events"])
        counts[str(b["number"])] = {"frames": n_frames, "events": n_events}
    return {"session_id": sid, "blocks": counts}
