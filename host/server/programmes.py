"""The dashboard's writes: a patient's programme editor, and adding a patient to the clinic.

In: signed-in therapists' forms (every POST carries the session's CSRF token) and the session store
through app.py's `signed_in_db`. A patient is reached by id within the therapist's own clinic, as on
every page (another clinic's is "not found").
Out: pages rendered from templates/programme.html and patients.html, a programme's TOML as a
download, and new rows in the store: a programme version (host.session.programme.save) or a patient
(host.store.add_clinic_patient).

The editor is one form: a row per item with every field of `programme.Item` (the reps and the hold
seconds share a column, as an item has one or the other by its exercise), turned into a dict and
validated by `programme.from_dict`, the same rules and sentences as a TOML file, the CLI and the
history window. A mistake re-renders the form with what was typed and the sentence; nothing is
saved. Adding, removing and moving rows are submit buttons handled here (so the form works without
JavaScript); static/programme.js does the same in the page without a round trip. A save names the
version it was edited from: one made meanwhile by someone else is not overwritten unseen.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import fields

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from host import store
from host.processing.exercise import EXERCISES, THRESHOLD_MAX_DEG, THRESHOLD_MIN_DEG
from host.server import auth
from host.session import programme as pg

# The editor's POST carries up to 30 items of 13 fields (notes up to 500 characters each) or a TOML
# text of the same: well under 128 KB, and far above the 16 KB of the other forms.
MAX_BODY_BYTES = 128 * 1024
MAX_TOML_CHARS = 64 * 1024
MAX_ROWS = 30 + 1                     # the programme's limit, and one more for the sentence saying so
EDITOR_POST = re.compile(r"/patients/[^/]+/programme(/import)?")
AMOUNT = "amount"                      # the column holding reps, or hold_s for the held exercises
COLUMNS = [AMOUNT if f.name == "reps" else f.name for f in fields(pg.Item) if f.name != "hold_s"]
HEADERS = {"exercise": "exercise", "stance": "stands on", "sets": "sets",
           AMOUNT: "reps (held: seconds)", "threshold_left_deg": "threshold left (°)",
           "threshold_right_deg": "threshold right (°)", "rest_s": "rest (s)", "feedback": "feedback",
           "bandwidth_deg": "bandwidth (±°)", "full_sessions": "faded: full sessions",
           "fade_sessions": "faded: fade over sessions", "notes": "notes for the patient"}
CHOICES = {"exercise": list(EXERCISES), "stance": list(pg.STANCES), "feedback": list(pg.FEEDBACK_MODES)}
TEXT_FIELDS = {"notes"}                # text even when it looks like a number


def _text(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def item_row(item: pg.Item) -> dict[str, str]:
    """An item as the form's texts."""
    row = {k: _text(getattr(item, k)) for k in COLUMNS if k != AMOUNT}
    row[AMOUNT] = _text(item.hold_s if item.held else item.reps)
    return row


def rows_of_form(form) -> list[dict[str, str]]:
    """The item rows as typed: each column's fields in page order (the rows carry no numbers, so
    the page's script can move and drop rows without renaming anything)."""
    cols = {k: [str(v) for v in form.getlist(k)] for k in COLUMNS}
    n = max((len(v) for v in cols.values()), default=0)
    if n > MAX_ROWS or any(len(v) != n for v in cols.values()):
        raise pg.ProgrammeError(f"the form is damaged (it has {n} items, at most {MAX_ROWS - 1} and every "
                                "field in every item); reload the page")
    return [{k: cols[k][i] for k in COLUMNS} for i in range(n)]


def programme_of_rows(rows: list[dict[str, str]], per_week: str, notes: str) -> pg.Programme:
    """The form as a validated Programme (programme.from_dict's rules); ProgrammeError otherwise."""
    items = []
    for i, row in enumerate(rows, 1):
        d = {}
        for k, text in row.items():
            if k not in TEXT_FIELDS and not text.strip():
                raise pg.ProgrammeError(f"item {i} ({row.get('exercise', '?')}): {HEADERS.get(k, k)} is empty; "
                                        "give a value")
            d[k] = text.strip() if k in TEXT_FIELDS else pg.value_of_text(text)
        amount = d.pop(AMOUNT)
        held = d.get("exercise") in pg.HOLD_EXERCISES
        d.update(hold_s=amount, reps=0) if held else d.update(reps=amount, hold_s=0.0)
        items.append(d)
    if not per_week.strip():
        raise pg.ProgrammeError("sessions a week is empty; give a value")
    return pg.from_dict({"sessions_per_week": pg.value_of_text(per_week), "notes": notes.strip(), "item": items})


def apply_op(rows: list[dict[str, str]], op: str) -> list[dict[str, str]]:
    """Rows after an add / remove-N / up-N / down-N button (N: 0-based row); others leave them."""
    rows = list(rows)
    verb, _, n = op.partition("-")
    if verb == "add" and len(rows) < MAX_ROWS - 1:
        rows.append(item_row(pg.Item()))
    if not (n.isascii() and n.isdigit() and int(n) < len(rows)):
        return rows
    i = int(n)
    if verb == "remove":
        del rows[i]
    elif verb == "up" and i > 0:
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    elif verb == "down" and i + 1 < len(rows):
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    return rows


def sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def download_name(label: str, version: int) -> str:
    return f"programme-{re.sub(r'[^A-Za-z0-9._-]', '_', label)}-v{version}.toml"


def current(conn, label: str) -> dict:
    """The patient's latest programme for a page: `stored` (or None), `lines` (its description),
    `versions`, and `error` when the stored text cannot be read by this version of hiplevel."""
    out = {"stored": None, "lines": [], "versions": pg.versions(conn, label), "error": ""}
    try:
        out["stored"] = pg.load(conn, label)
    except pg.ProgrammeError as e:
        out["error"] = sentence(f"the stored programme cannot be read: {e}")
    if out["stored"] is not None:
        out["lines"] = pg.describe(out["stored"].programme, out["stored"].version).splitlines()
    return out


async def patient_post(signed_in_db, request, pid: str, max_fields: int, handle):
    """A POST about one patient: signed in, the session's CSRF token, the patient within the
    therapist's clinic (else 404); then handle(form, conn, therapist, csrf, patient id, label) on a
    worker thread. Shared by this editor and host.server.devices."""
    from host.server.app import csrf_refused, found, parse_id
    form = await request.form(max_files=0, max_fields=max_fields, max_part_size=MAX_BODY_BYTES)

    def work():
        with signed_in_db(request) as (c, t, csrf):
            if not auth.same_token(csrf, form.get("csrf")):
                return csrf_refused()
            p = parse_id(pid)
            return handle(form, c, t, csrf, p, found(store.patient_of_clinic(c, p, t.clinic_id)))
    return await asyncio.to_thread(work)


def router(signed_in_db, render) -> APIRouter:
    """The routes, on app.py's signed-in connection helper and template renderer."""
    from host.server.app import csrf_refused, found, parse_id, _plain  # app.py includes this router: import late

    r = APIRouter()

    def editor(request, c, t, csrf, pid: int, label: str, status=200, **ctx):
        cur = current(c, label)
        stored = cur["stored"]
        ctx.setdefault("rows", [item_row(i) for i in (stored.programme.items if stored else [pg.Item()])])
        ctx.setdefault("per_week", str(stored.programme.sessions_per_week if stored else pg.Programme().sessions_per_week))
        ctx.setdefault("notes", stored.programme.notes if stored else "")
        ctx["base_version"] = stored.version if stored else 0
        return render(request, "programme.html", status, me=t, csrf=csrf, pid=pid, label=label, cur=cur,
                      columns=COLUMNS, headers=HEADERS, choices=CHOICES, blank=item_row(pg.Item()),
                      held=" and ".join(sorted(pg.HOLD_EXERCISES)), thr_min=THRESHOLD_MIN_DEG,
                      thr_max=THRESHOLD_MAX_DEG, **ctx)

    def save(c, label: str, p: pg.Programme, base: str | None) -> tuple[pg.StoredProgramme | None, str]:
        """(the new version, "") or (None, why not), in one transaction."""
        try:
            c.execute("BEGIN IMMEDIATE")
            latest = max((v for v, _ in pg.versions(c, label)), default=0)
            if base is not None and base != str(latest):
                c.execute("ROLLBACK")
                return None, (f"Not saved: version {latest} was saved meanwhile (from another page or the "
                              "command line). What you typed is kept below; compare it with the programme "
                              "above and save again.")
            stored = pg.save(c, label, p)
            c.execute("COMMIT")
            return stored, ""
        except BaseException as e:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(e, store.DB_ERRORS):
                return None, sentence(f"not saved: {store.explain(e, 'the session database')}")
            raise

    def saved_redirect(pid: int, version: int):
        return RedirectResponse(f"/patients/{pid}/programme?saved={version}", status_code=303)

    @r.get("/patients/{pid}/programme")
    def editor_page(request: Request, pid: str, saved: str = ""):
        with signed_in_db(request) as (c, t, csrf):
            p = parse_id(pid)
            label = found(store.patient_of_clinic(c, p, t.clinic_id))
            return editor(request, c, t, csrf, p, label, saved=saved if saved.isascii() and saved.isdigit() else "")

    async def patient_form(request, pid: str, max_fields: int, handle):
        return await patient_post(signed_in_db, request, pid, max_fields, handle)

    @r.post("/patients/{pid}/programme")
    async def editor_post(request: Request, pid: str):
        def handle(form, c, t, csrf, p, label):
            per_week, notes = str(form.get("sessions_per_week", "")), str(form.get("programme_notes", ""))
            try:
                rows = rows_of_form(form)
            except pg.ProgrammeError as e:
                return editor(request, c, t, csrf, p, label, 400, message=sentence(f"not saved: {e}"))
            typed = dict(rows=rows, per_week=per_week, notes=notes)
            op = str(form.get("op", "save"))
            if op != "save":
                return editor(request, c, t, csrf, p, label, **{**typed, "rows": apply_op(rows, op)})
            try:
                programme = programme_of_rows(rows, per_week, notes)
            except pg.ProgrammeError as e:
                return editor(request, c, t, csrf, p, label, 400, message=sentence(f"not saved: {e}"), **typed)
            stored, why = save(c, label, programme, str(form.get("base_version", "")))
            if stored is None:
                return editor(request, c, t, csrf, p, label, 409, message=why, **typed)
            return saved_redirect(p, stored.version)
        return await patient_form(request, pid, len(COLUMNS) * MAX_ROWS + 8, handle)

    @r.post("/patients/{pid}/programme/import")
    async def import_post(request: Request, pid: str):
        def handle(form, c, t, csrf, p, label):
            text = str(form.get("toml", ""))
            try:
                if len(text) > MAX_TOML_CHARS:
                    raise pg.ProgrammeError(f"the programme file is longer than {MAX_TOML_CHARS // 1024} KB")
                programme = pg.from_toml(text)
            except pg.ProgrammeError as e:
                return editor(request, c, t, csrf, p, label, 400, toml=text,
                              import_message=sentence(f"not imported: {e}"))
            stored, why = save(c, label, programme, None)
            if stored is None:
                return editor(request, c, t, csrf, p, label, 409, toml=text, import_message=why)
            return saved_redirect(p, stored.version)
        return await patient_form(request, pid, 4, handle)

    @r.get("/patients/{pid}/programme.toml")
    def download(request: Request, pid: str, version: str = ""):
        with signed_in_db(request) as (c, t, _):
            label = found(store.patient_of_clinic(c, parse_id(pid), t.clinic_id))
            try:
                s = found(pg.load(c, label, parse_id(version) if version else None))
            except pg.ProgrammeError:
                return _plain(409, "This programme version cannot be read by this version of hiplevel.")
            text = pg.to_toml(s.programme, header=f"programme of {label}, version {s.version}")
            return Response(text, media_type="application/toml; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="{download_name(label, s.version)}"'})

    @r.post("/patients")
    async def add_patient(request: Request):
        form = await request.form(max_files=0, max_fields=2, max_part_size=1024)

        def work():
            with signed_in_db(request) as (c, t, csrf):
                if not auth.same_token(csrf, form.get("csrf")):
                    return csrf_refused()
                typed = str(form.get("label", ""))
                try:
                    pid = store.add_clinic_patient(c, typed, t.clinic_id)
                except (ValueError, store.StoreError) as e:
                    return render(request, "patients.html", 400, me=t, csrf=csrf,
                                  patients=store.clinic_patients(c, t.clinic_id), live=store.open_blocks(c, t.clinic_id),
                                  typed=typed, message=sentence(f"not added: {e}"))
                except store.DB_ERRORS as e:
                    return _plain(503, sentence(f"not added: {store.explain(e, 'the session database')}"))
                return RedirectResponse(f"/patients/{pid}", status_code=303)  # new, or already theirs
        return await asyncio.to_thread(work)

    return r
