"""The dashboard's web app (Starlette via FastAPI): pages, the live WebSocket, sign-in and sign-out.

In: HTTP requests and WebSocket connections from therapists' browsers; the session store at `db`
(opened per request: each request runs on a worker thread with its own connection). Out: HTML pages
rendered from templates/ (the session and progress content is host.report.html's, the same as the
HTML reports), the live view's JSON messages (host.server.live), and redirects.

Every route but the sign-in page, its style sheet and the home installations' API (host.server.devices,
which takes a device's token instead) needs a signed-in therapist (host.server.auth),
and everything a therapist can reach by id is looked up within their own clinic: another clinic's
patient, session or block is "not found", exactly like one that does not exist. Ids in paths are
checked as plain positive numbers before any query; every POST carries a CSRF token; request
bodies are capped (MAX_BODY_BYTES; the programme editor's higher, host.server.programmes, which has
the dashboard's writes); WebSockets must come from the dashboard's own origin.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from host import __version__
from host import store
from host.report import html as report_html
from host.report.text import fmt_duration
from host.server import auth, devices, programmes
from host.server.live import PLOT_HZ, LiveHubs
from host.session import programme

HERE = Path(__file__).resolve().parent
STATIC = {"style.css": "text/css", "live.js": "text/javascript", "programme.js": "text/javascript"}
PUBLIC_STATIC = {"style.css"}         # the sign-in page needs it
MAX_BODY_BYTES = 16 * 1024            # sign-in, sign-out, adding a patient (the editor: programmes.py)
MAX_ID = 2 ** 53
# the reports' own style, less its page layout (the dashboard has its own header and width)
REPORT_CSS = re.sub(r"\bbody\{[^}]*\}", "", report_html.CSS)
SESSION_COOKIE, PRE_CSRF_COOKIE = "hl_session", "hl_signin_csrf"
HEADERS = {
    # no inline script anywhere; the report's SVG and <style> need inline styles
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class NotSignedIn(Exception):
    pass


def parse_id(text: str) -> int:
    """A positive id from a path, or 404 (injection strings, traversal, huge numbers)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or not 0 < int(text) < MAX_ID:
        raise HTTPException(404)
    return int(text)


def create_app(db, *, secure_cookies: bool = False, limiter: auth.SignInLimiter | None = None,
               plot_hz: float = PLOT_HZ) -> FastAPI:
    """The app for the database at `db` (made and migrated if needed). secure_cookies: send the
    session cookie only over HTTPS (set it behind a TLS proxy, docs/deployment.md)."""
    conn = store.connect(db, create=True)
    conn.close()
    app = FastAPI(title="hiplevel", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(version=__version__, local_time=store.local_time, fmt_duration=fmt_duration)
    app.state.limiter = limiter or auth.SignInLimiter()
    app.state.pair_limiter = auth.SignInLimiter()  # wrong pairing codes, per client address
    app.state.hubs = LiveHubs(db, plot_hz)

    def db_conn():
        return store.connect(db, create=False)

    def signed_in(request: Request, c) -> tuple[store.Therapist, str]:
        found = auth.session_of(c, request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise NotSignedIn()
        return found

    @contextlib.contextmanager
    def signed_in_db(request: Request):
        """(connection, therapist, csrf token) for a signed-in request; NotSignedIn otherwise."""
        c = db_conn()
        try:
            yield (c, *signed_in(request, c))
        finally:
            c.close()

    def render(request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD", "POST"):
            return _plain(405, "That method is not used here.")
        length = request.headers.get("content-length")
        cap = devices.body_cap(request.url.path) or (
            programmes.MAX_BODY_BYTES if programmes.EDITOR_POST.fullmatch(request.url.path) else MAX_BODY_BYTES)
        if length is not None and (not length.isdigit() or int(length) > cap):
            return _plain(413, "The request is too large.")
        if request.method == "POST" and length is None:
            return _plain(411, "A form needs its length.")
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "sign in first"}, status_code=401)
        return RedirectResponse("/signin", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        words = {404: "Not found.", 405: "That method is not used here.", 403: "Refused."}
        return _plain(exc.status_code, exc.detail if exc.status_code == 400 else words.get(exc.status_code, "Error."))

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc):
        return _plain(400, "The request is not valid.")

    # ---- sign in / out ----
    @app.get("/signin")
    def signin_page(request: Request):
        return _signin_form(request, render)

    @app.post("/signin")
    async def signin(request: Request):
        form = await request.form(max_files=0, max_fields=4, max_part_size=MAX_BODY_BYTES)
        if not auth.same_token(request.cookies.get(PRE_CSRF_COOKIE), form.get("csrf")):
            return _signin_form(request, render, "The form has expired; please sign in again.", 403)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        ip = request.client.host if request.client else "?"
        keys = (f"user:{username.strip().lower()[:auth.USERNAME_MAX]}", f"ip:{ip}")
        wait = app.state.limiter.wait_s(*keys)
        if wait > 0:
            return _signin_form(request, render, f"Too many failed sign-ins; try again in {int(wait) + 1} s.", 429)

        def check():
            c = db_conn()
            try:
                try:
                    name = auth.check_username(username)
                    auth.check_password(password)
                except ValueError:
                    return None
                t = auth.verify(c, name, password)
                return auth.start_session(c, t) if t is not None else None
            finally:
                c.close()
        started = await asyncio.to_thread(check)
        if started is None:
            app.state.limiter.failed(*keys)
            return _signin_form(request, render, "Wrong user name or password.", 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, started[0], httponly=True, samesite="strict", secure=secure_cookies,
                            path="/")
        response.delete_cookie(PRE_CSRF_COOKIE, path="/signin")
        return response

    @app.post("/signout")
    async def signout(request: Request):
        form = await request.form(max_files=0, max_fields=2, max_part_size=1024)

        def end():
            c = db_conn()
            try:
                _t, csrf = signed_in(request, c)
                if not auth.same_token(csrf, form.get("csrf")):
                    return False
                store.end_web_session(c, auth.digest(request.cookies.get(SESSION_COOKIE, "")))
                return True
            finally:
                c.close()
        if not await asyncio.to_thread(end):
            return csrf_refused()
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- pages ----
    @app.get("/")
    def patients(request: Request):
        with signed_in_db(request) as (c, t, csrf):
            return render(request, "patients.html", me=t, csrf=csrf, patients=store.clinic_patients(c, t.clinic_id),
                          live=store.open_blocks(c, t.clinic_id))

    @app.get("/patients/{pid}")
    def patient(request: Request, pid: str):
        with signed_in_db(request) as (c, t, csrf):
            p = parse_id(pid)
            label = found(store.patient_of_clinic(c, p, t.clinic_id))
            sessions = store.list_sessions(c, label)
            body = report_html.patient_body(label, store.progress(c, label), programme.adherence(c, label))
            return render(request, "patient.html", me=t, csrf=csrf, label=label, sessions=sessions[::-1],
                          report=body, css=REPORT_CSS, pid=p, programme=programmes.current(c, label),
                          devices=store.patient_devices(c, p))

    @app.get("/sessions/{sid}")
    def session(request: Request, sid: str):
        with signed_in_db(request) as (c, t, csrf):
            s = found(store.session_of_clinic(c, parse_id(sid), t.clinic_id))
            pid = store.patient_id(c, s.patient, create=False)
            return render(request, "session.html", me=t, csrf=csrf, session=s, patient_id=pid,
                          report=report_html.session_body(c, s), css=REPORT_CSS)

    @app.get("/live")
    def live_list(request: Request):
        with signed_in_db(request) as (c, t, csrf):
            return render(request, "live_list.html", me=t, csrf=csrf, live=store.open_blocks(c, t.clinic_id))

    @app.get("/api/live")
    def live_api(request: Request):
        with signed_in_db(request) as (c, t, _):
            return {"live": store.open_blocks(c, t.clinic_id)}

    @app.get("/live/{bid}")
    def live_page(request: Request, bid: str):
        with signed_in_db(request) as (c, t, csrf):
            b = found(store.block_of_clinic(c, parse_id(bid), t.clinic_id))
            s = store.get_session(c, b.session_id)
            return render(request, "live.html", me=t, csrf=csrf, block=b, session=s)

    app.include_router(programmes.router(signed_in_db, render))
    app.include_router(devices.router(signed_in_db, render, db_conn, app.state.pair_limiter))

    @app.get("/static/{name}")
    def static(request: Request, name: str):
        if name not in STATIC:
            raise HTTPException(404)
        if name not in PUBLIC_STATIC:
            with signed_in_db(request):
                pass
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name])

    @app.websocket("/ws/live/{bid}")
    async def live_ws(ws: WebSocket, bid: str):
        def allowed():
            origin, host = ws.headers.get("origin"), ws.headers.get("host")
            if origin is None or host is None or origin.split("://", 1)[-1] != host:
                return None  # another site's page cannot open it with the therapist's cookie
            try:
                block_id = parse_id(bid)
            except HTTPException:
                return None
            c = db_conn()
            try:
                found = auth.session_of(c, ws.cookies.get(SESSION_COOKIE))
                if found is None or store.block_of_clinic(c, block_id, found[0].clinic_id) is None:
                    return None
                return block_id
            finally:
                c.close()
        block_id = await asyncio.to_thread(allowed)
        if block_id is None:
            await ws.close(code=4403)  # before accept: the handshake is refused (HTTP 403)
            return
        await ws.accept()
        hub = app.state.hubs.hub(block_id)
        q = hub.subscribe()

        async def acks():
            while True:
                msg = await ws.receive_json()
                if isinstance(msg, dict):
                    hub.ack(msg.get("ack"), time.monotonic())
        reader = asyncio.create_task(acks())
        try:
            while not reader.done():
                get = asyncio.create_task(q.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                await ws.send_json(get.result())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.unsubscribe(q)
            reader.cancel()

    return app


def found(x):
    """x, or 404 when it is None (missing, or another clinic's: the same answer)."""
    if x is None:
        raise HTTPException(404)
    return x


def csrf_refused() -> HTMLResponse:
    """The answer to a form whose CSRF token is not the session's (every signed-in POST)."""
    return _plain(403, "Refused: the form's token does not match your session.")


def _plain(status: int, words: str) -> HTMLResponse:
    from html import escape
    r = HTMLResponse(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>"
                     f"<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><h1>{escape(words)}</h1>"
                     f"<p><a href=\"/\">Back to the patients</a></p></main></body></html>", status_code=status)
    for k, v in HEADERS.items():
        r.headers[k] = v
    return r


def _signin_form(request: Request, render, message: str = "", status: int = 200):
    import secrets
    token = secrets.token_urlsafe(32)
    r = render(request, "signin.html", status, csrf=token, message=message)
    r.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/signin", max_age=3600)
    return r
