"""A home installation's link to its clinic: pairing (`hiplevel pair`), uploading finished sessions
(`hiplevel upload`, and by itself after `run` and `today`), fetching the patient's programme
(`today`) and sharing a running session live (`--share-live`). The server side is host.server.devices.

In: the pairing file (pairing_path(): $HIPLEVEL_PAIRING, else pairing.json in the user's config
folder; JSON, readable by its owner only) holding the clinic's URL, this installation's token and
the patient it was paired for; the local session store. Out: HTTPS requests (plain HTTP only to this
machine's loopback, for tests and a clinic's own reverse proxy), sessions.uploaded_utc on each
session the clinic confirmed, and sentences for the user (ClinicError) when something fails. A
failure never touches the local record: what did not reach the clinic is sent next time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from host import store
from host.session import transfer

CHUNK_BYTES = 512 * 1024
TIMEOUT_S = 20.0
LIVE_INTERVAL_S = 1.0
LIVE_BATCH = 2000            # frames per live request


class ClinicError(Exception):
    """Said to the user as it is. `unreachable`: the clinic did not answer (try again later)."""

    def __init__(self, message: str, status: int | None = None, unreachable: bool = False, body: dict | None = None):
        super().__init__(message)
        self.status, self.unreachable, self.body = status, unreachable, body or {}


@dataclasses.dataclass
class Pairing:
    url: str
    token: str
    patient: str
    clinic: str | None
    paired_utc: str


def pairing_path() -> Path:
    env = os.environ.get("HIPLEVEL_PAIRING")
    if env:
        return Path(env)
    import platformdirs
    return platformdirs.user_config_path("hiplevel", appauthor=False) / "pairing.json"


def load_pairing(path: Path | None = None) -> Pairing | None:
    """The pairing, None when this installation is not paired. ClinicError for a damaged file."""
    path = path or pairing_path()
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Pairing(**{f.name: d[f.name] for f in dataclasses.fields(Pairing)})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClinicError(f"the pairing file {path} cannot be read ({e}); pair again with `hiplevel pair`") from None


def save_pairing(p: Pairing, path: Path | None = None) -> Path:
    path = path or pairing_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token is a password
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(p), f, indent=1)
        os.replace(tmp, path)
    except OSError as e:
        raise ClinicError(f"the pairing cannot be saved in {path}: {e.strerror}") from None
    return path


def check_url(text: str) -> str:
    """The clinic's base URL; ClinicError unless https://, or http:// to this machine."""
    u = urllib.parse.urlsplit(text.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ClinicError(f"{text!r} is not the clinic's address; it looks like https://clinic.example.org")
    if u.scheme == "http":
        try:
            loopback = u.hostname == "localhost" or ipaddress.ip_address(u.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ClinicError("the clinic's address must start with https:// (the pairing token would travel "
                              "unencrypted); plain http:// is only for this machine")
    return urllib.parse.urlunsplit((u.scheme, u.netloc, u.path.rstrip("/"), "", ""))


def _request(url: str, method: str, path: str, token: str | None = None, body: bytes | None = None,
             content_type: str = "application/json", timeout_s: float = TIMEOUT_S) -> dict:
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            d = json.loads(e.read())
        except ValueError:
            d = {}
        words = d.get("error") if isinstance(d, dict) else None
        raise ClinicError(f"the clinic refused: {words or f'HTTP {e.code}'}", status=e.code,
                          body=d if isinstance(d, dict) else {}) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ClinicError(f"the clinic at {url} cannot be reached ({reason})", unreachable=True) from None


def pair(url: str, code: str, name: str, path: Path | None = None) -> Pairing:
    """Pair with the clinic using a one-time code from its dashboard; the saved pairing."""
    url = check_url(url)
    d = _request(url, "POST", "/api/device/pair", body=json.dumps({"code": code, "name": name}).encode())
    p = Pairing(url=url, token=d["token"], patient=d["patient"], clinic=d.get("clinic"), paired_utc=store.utc_now())
    save_pairing(p, path)
    return p


class ClinicLink:
    def __init__(self, pairing: Pairing, timeout_s: float = TIMEOUT_S):
        self.pairing, self.timeout_s = pairing, timeout_s

    def call(self, method: str, path: str, doc: dict | None = None, raw: bytes | None = None) -> dict:
        body = raw if raw is not None else (json.dumps(doc).encode() if doc is not None else None)
        return _request(self.pairing.url, method, path, self.pairing.token, body,
                        "application/octet-stream" if raw is not None else "application/json", self.timeout_s)

    def programme(self) -> dict | None:
        """{"patient", "version", "toml"} of the clinic's latest programme, None when there is none."""
        try:
            return self.call("GET", "/api/device/programme")
        except ClinicError as e:
            if e.status == 404:
                return None
            raise

    def upload(self, payload: bytes, uuid_: str) -> int:
        """Send a session document (host.session.transfer) and return its id at the clinic. Resumes:
        only chunks the clinic lacks are sent, so a dropped link costs the chunk it was sending."""
        chunks = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
        st = self.call("POST", "/api/device/uploads", {
            "uuid": uuid_, "total_bytes": len(payload), "chunk_bytes": CHUNK_BYTES,
            "sha256": hashlib.sha256(payload).hexdigest(), "chunks": [hashlib.sha256(c).hexdigest() for c in chunks]})
        for _attempt in range(3):
            if st.get("done"):
                return int(st["session_id"])
            for i in sorted(set(range(len(chunks))) - set(st.get("have", []))):
                st = self.call("POST", f"/api/device/uploads/{uuid_}/chunks/{i}", raw=chunks[i])
            try:
                st = self.call("POST", f"/api/device/uploads/{uuid_}/finish")
            except ClinicError as e:
                if e.status != 409 or "missing" not in e.body:
                    raise
                st = self.call("GET", f"/api/device/uploads/{uuid_}")
        raise ClinicError("the clinic kept missing chunks of the upload; it is sent again next time")


def pending_sessions(conn, patient: str) -> list[int]:
    """The patient's finished sessions the clinic has not confirmed, oldest first."""
    return [r[0] for r in conn.execute(
        "SELECT s.id FROM sessions s JOIN patients p ON p.id = s.patient_id WHERE p.label = ? AND "
        "s.ended_utc IS NOT NULL AND s.uploaded_utc IS NULL ORDER BY s.started_utc, s.id", (patient,))]


def upload_uuid(conn, session_id: int) -> str:
    """The session's upload id, given once and kept (so a retried upload is the same upload)."""
    row = conn.execute("SELECT upload_uuid FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row[0]:
        return row[0]
    u = uuid.uuid4().hex
    conn.execute("UPDATE sessions SET upload_uuid = ? WHERE id = ? AND upload_uuid IS NULL", (u, session_id))
    return conn.execute("SELECT upload_uuid FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]


def upload_pending(db, link: ClinicLink, say, session_ids: list[int] | None = None) -> tuple[int, int]:
    """Upload the paired patient's sessions not confirmed yet (or those given); (sent, left). Each
    outcome is one sentence to `say`; a clinic out of reach stops here (the rest waits)."""
    conn = store.connect(db, create=True)
    sent = 0
    try:
        todo = pending_sessions(conn, link.pairing.patient)
        if session_ids is not None:
            for sid in session_ids:
                row = conn.execute("SELECT p.label, s.ended_utc FROM sessions s JOIN patients p ON p.id = s.patient_id "
                                   "WHERE s.id = ?", (sid,)).fetchone()
                if row is None or row[0] != link.pairing.patient:
                    say(f"Session {sid} is not uploaded: " + ("there is no such session." if row is None else
                        f"it is of patient {row[0]}, and this installation is paired for {link.pairing.patient}."))
                elif row[1] is None:
                    say(f"Session {sid} is not uploaded: it has not ended (it is recording, or was cut off).")
            todo = [sid for sid in session_ids if sid in todo]
        for k, sid in enumerate(todo):
            uuid_ = upload_uuid(conn, sid)
            payload = transfer.export_session(conn, sid, uuid_)
            try:
                remote = link.upload(payload, uuid_)
            except ClinicError as e:
                say(f"Session {sid} was not uploaded: {e}. It stays on this computer"
                    + (" and is sent next time." if e.unreachable or e.status in (None, 409, 429, 503) else "."))
                if e.unreachable:
                    return sent, len(todo) - k
                continue
            conn.execute("UPDATE sessions SET uploaded_utc = ? WHERE id = ?", (store.utc_now(), sid))
            sent += 1
            say(f"Session {sid} uploaded to the clinic ({len(payload) // 1024 + 1} KB; session {remote} there).")
        return sent, len(todo) - sent
    finally:
        conn.close()


def auto_upload(db, say) -> None:
    """After `run` and `today`: upload what is pending when this installation is paired; never raises."""
    try:
        p = load_pairing()
        if p is None:
            return
        upload_pending(db, ClinicLink(p), say)
    except (ClinicError, store.StoreError) as e:
        say(f"Nothing was uploaded: {e}.")
    except store.DB_ERRORS as e:
        say(f"Nothing was uploaded: {store.explain(e, db)}.")


class LiveShare:
    """Sends a running session to the clinic while it records (the patient agreed to be watched):
    a thread reads what the recorder committed to the local store (every 0.5 s) and posts the new
    frames and events of each block; the clinic says where each block stands, so a lost request
    is sent again and nothing twice. Out of reach, it waits and goes on; the finished upload is
    the complete record either way."""

    def __init__(self, db, link: ClinicLink, session_id_of, say, interval_s: float = LIVE_INTERVAL_S):
        self.db, self.link, self.session_id_of, self.say, self.interval_s = db, link, session_id_of, say, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hiplevel-live-share", daemon=True)
        self.sent_frames = 0
        self._said_down = False
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn, sid, uuid_, at = None, None, None, {}
        try:
            while True:
                stopping = self._stop.wait(self.interval_s)
                try:
                    if conn is None:
                        sid = self.session_id_of()
                        if sid is None:
                            if stopping:
                                return
                            continue
                        conn = store.connect(self.db, create=False)
                    if uuid_ is None:
                        uuid_ = upload_uuid(conn, sid)
                    more = self._send(conn, sid, uuid_, at)
                except ClinicError as e:
                    if e.status == 409 or e.status == 401:
                        self.say(f"Live sharing stopped: {e}.")
                        return
                    if not self._said_down:
                        self.say(f"Live sharing paused: {e}; the session is recorded here as always.")
                        self._said_down = True
                    more = False
                except (store.StoreError, *store.DB_ERRORS):
                    more = False
                if stopping and not more:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _send(self, conn, sid: int, uuid_: str, at: dict) -> bool:
        """One request with what is new; True when more is waiting."""
        s = store.get_session(conn, sid)
        blocks, more = [], False
        for b in s.blocks:
            frames_from, events_from = at.get(b.number, (0, 0))
            rows = store.frames_after(conn, b.id, frames_from - 1, LIVE_BATCH)
            events = transfer.stored_events(conn, b.id, events_from)
            if not rows and not events and b.number in at:
                continue
            more = more or len(rows) == LIVE_BATCH
            blocks.append({"number": b.number, "started_utc": b.started_utc, "settings": b.settings,
                           "frames_from": frames_from, "events_from": events_from,
                           "frames": transfer.encoded_frames(r[1:] for r in rows),
                           "events": events})
        if not blocks:
            return False
        if self._said_down:
            self.say("Live sharing is back.")
            self._said_down = False
        answer = self.link.call("POST", f"/api/device/live/{uuid_}", {
            "started_utc": s.started_utc, "source": s.source, "app_version": s.app_version, "blocks": blocks})
        for number, c in answer.get("blocks", {}).items():
            at[int(number)] = (int(c["frames"]), int(c["events"]))
        self.sent_frames = sum(f for f, _ in at.values())
        return more


def paired_patient() -> str | None:
    """The patient this installation is paired for (the default --patient of `run` and `today`)."""
    try:
        p = load_pairing()
    except ClinicError:
        return None
    return p.patient if p else None


def start_live_share(db, session_id_of, say) -> LiveShare | None:
    """`--share-live`: a LiveShare to the paired clinic, or None (said why) when not paired."""
    try:
        p = load_pairing()
    except ClinicError as e:
        say(f"Live sharing is off: {e}.")
        return None
    if p is None:
        say("Live sharing is off: this installation is not paired with a clinic (`hiplevel pair`).")
        return None
    say(f"Sharing this session live with {p.clinic or 'the clinic'}.")
    return LiveShare(db, ClinicLink(p), session_id_of, say)


def fetch_programme(db, patient: str, say) -> None:
    """Before `today`: the clinic's latest programme for the paired patient, stored as the local
    latest version when it differs; the clinic out of reach, the local copy is used (said so)."""
    from host.session import programme as pg
    try:
        p = load_pairing()
        if p is None or p.patient != patient:
            return
        remote = ClinicLink(p).programme()
    except ClinicError as e:
        say(f"The clinic's programme could not be fetched ({e}); using the copy on this computer.")
        return
    if remote is None:
        return
    try:
        programme = pg.from_toml(remote["toml"])
    except pg.ProgrammeError as e:
        say(f"The clinic's programme cannot be used here ({e}); using the copy on this computer.")
        return
    try:
        conn = store.connect(db, create=True)
        try:
            try:
                local = pg.load(conn, patient)
            except pg.ProgrammeError:
                local = None
            if local is None or local.programme != programme:
                saved = pg.save(conn, patient, programme)
                say(f"New programme from the clinic (its version {remote['version']}), saved here as version "
                    f"{saved.version}.")
        finally:
            conn.close()
    except store.StoreError as e:
        say(f"The clinic's programme could not be saved here ({e}).")
    except store.DB_ERRORS as e:
        say(f"The clinic's programme could not be saved here ({store.explain(e, db)}).")
