"""`hiplevel bench clinic`: many stations recording into one database while WebSocket clients watch
them live through a real `hiplevel serve` (uvicorn, loopback only).

In: --stations (a list: one run per count), --watchers, --duration-s. Per run: a fresh SQLite
database (a private PostgreSQL server's with --postgres) with one clinic, a therapist and one patient
per station; the dashboard as its own process; each station a real StreamRunner + Recorder in its
own process (spawned: as each station is its own machine), fed the simulated
sensor's frames (firmware_sim.device.SimDevice, 208 Hz) on the sensor's real-time schedule by an
in-process transport (host.links.memory); each watcher a WebSocket client (websockets) signed in
through the real form, watching station j % N, acknowledging every message as the browser does.
Out: per station count: frames sent and stored, the dashboard's CPU (its process, all threads, from
/proc), and the live delay from a frame's host receive time to the watcher (both on this machine's
monotonic clock: for each message, its newest and its oldest frame), printed and with
--write-docs written into docs/performance.md.
"""
from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADING = "Clinic: stations recording into one database, watched live"
RATE_HZ = 208


def add_arguments(p) -> None:
    from host.commands.argtypes import integer, positive
    p.add_argument("--stations", default="1,5,10,20", help="station counts to run, comma-separated (default 1,5,10,20)")
    p.add_argument("--watchers", type=integer(0, 50, what="0 to 50 watchers"), default=5,
                   help="WebSocket clients watching (default 5)")
    p.add_argument("--duration-s", type=positive, default=30.0, help="seconds each station streams (default 30)")
    p.add_argument("--postgres", action="store_true",
                   help="record into a private PostgreSQL server (host/bench/pgserver.py) instead of SQLite")
    p.add_argument("--write-docs", metavar="FILE", help="write the results into this Markdown file")


def station_frames(duration_s: float, seed: int) -> list[tuple[float, bytes]]:
    """(due_s, frame) of a simulated patient doing hip dips for duration_s, then the STOP frame."""
    from firmware_sim.device import SimDevice
    from firmware_sim.motion import Scenario
    dev = SimDevice(Scenario(drops_deg=[7.0, 3.0] * 40, calibration_bends=0), rate_hz=RATE_HZ, seed=seed)
    dev.streaming = True
    out = [(0.0, dev.info_frame())]
    for k in range(1, int(duration_s * 100) + 1):
        out += [(k * 0.01, f) for f in dev.frames_due(k * 0.01)]
    return out + [(duration_s, dev.stop_frame())]


def _station_process(db, patient: str, duration_s: float, seed: int, started, done_q) -> None:
    """A station in its own process: its frames, then run_station; its result onto done_q."""
    result: dict = {}
    try:
        run_station(db, patient, station_frames(duration_s, seed), result, started)
    finally:
        started.set()
        done_q.put(result)


def run_station(db, patient: str, frames, result: dict, started) -> None:
    from host.links.memory import MemoryTransport
    from host.processing.pipeline import PipelineConfig
    from host.session.runner import StreamRunner
    from host.sinks.recorder import Recorder, settings_of
    cfg = PipelineConfig()
    cfg.calibration = "standing"
    rec = Recorder(db, patient, source=f"bench station {patient}", report=lambda m: result.setdefault("said", m))
    rec.start_block(settings_of(cfg))
    transport = MemoryTransport(frames)
    runner = StreamRunner(transport, cfg, recorder=rec, no_data_timeout_s=math.inf)
    started.set()
    asyncio.run(runner.run())
    rec.close()
    result.update(sent=len(transport.arrival_host_s), session=rec.session_id)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _watch(base: str, cookie: str, block_id: int, stop: asyncio.Event, out: dict) -> None:
    """Watch one block until `stop`, as the browser does; a dropped connection (a keepalive ping
    unanswered while the cores are saturated) is counted and opened again, as live.js does."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    while not stop.is_set():
        try:
            async with connect(base.replace("http", "ws", 1) + f"/ws/live/{block_id}", origin=base,
                               additional_headers={"cookie": f"hl_session={cookie}"}, max_size=2 ** 22) as ws:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0)
                    except asyncio.TimeoutError:
                        continue
                    now = time.monotonic()
                    m = json.loads(raw)
                    out["messages"] += 1
                    if m.get("t_host_s") is not None:  # same machine: the station's monotonic clock is ours
                        out["newest"].append(now - m["t_host_s"])
                        out["oldest"].append(now - m["t_host_oldest_s"])
                    await ws.send(json.dumps({"ack": m["seq"]}))
        except (ConnectionClosed, OSError):
            out["dropped"] += 1
            await asyncio.sleep(0.5)


def one_run(n: int, watchers: int, duration_s: float, pg_server=None) -> dict:
    """One station count; into a new database on `pg_server` (host.bench.pgserver) when given."""
    import httpx
    from host import store
    from host.server import auth
    from host.commands.clinic import transaction
    tmp = Path(tempfile.mkdtemp(prefix="hiplevel-bench-clinic-"))
    db = pg_server.new_database() if pg_server is not None else tmp / "sessions.sqlite"
    password = "bench-password-1"
    conn = store.connect(db, create=True)
    with transaction(conn):
        store.set_therapist(conn, "Bench", "bench", auth.hash_password(password))
        for i in range(n):
            store.assign_patient(conn, f"S-{i + 1:02d}", "Bench")
    conn.close()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "host.cli", "serve", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert "dashboard on" in server.stdout.readline()
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(100):
                try:
                    page = c.get("/signin")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            c.post("/signin", data={"username": "bench", "password": password, "csrf": csrf})
            cookie = c.cookies["hl_session"]
            # each station its own process, as each is its own machine: 20 stations' pipelines on one
            # interpreter's lock measured that lock (and starved the watchers), not the server
            ctx = multiprocessing.get_context("spawn")
            done_q = ctx.Queue()
            threads, results = [], []
            for i in range(n):
                started = ctx.Event()
                t = ctx.Process(target=_station_process, args=(db, f"S-{i + 1:02d}", duration_s, i + 1, started, done_q),
                                daemon=True)
                t.start()
                started.wait(60)
                threads.append(t)
            deadline = time.monotonic() + 20
            while len(live := c.get("/api/live").json()["live"]) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            blocks = sorted(b["block_id"] for b in live)
            if len(blocks) < n:
                from host.errors import UserError
                said = "; ".join(r["said"] for r in results if "said" in r)
                raise UserError(f"only {len(blocks)} of {n} stations started recording in 20 s" + (f": {said}" if said else ""))
        cpu0, wall0 = _cpu_s(server.pid), time.monotonic()
        watched = [{"messages": 0, "newest": [], "oldest": [], "dropped": 0} for _ in range(watchers)]

        async def watch_all():
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_watch(base, cookie, blocks[j % n], stop, watched[j]))
                     for j in range(watchers)]
            while len(results) < n and any(t.is_alive() for t in threads):
                while not done_q.empty():
                    results.append(done_q.get())
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # the last commit reaches the watchers
            stop.set()
            await asyncio.gather(*tasks)
        asyncio.run(watch_all())
        while len(results) < n:
            results.append(done_q.get(timeout=60))
        cpu_pct = 100.0 * (_cpu_s(server.pid) - cpu0) / (time.monotonic() - wall0)
    finally:
        server.terminate()
        server.wait(10)
    conn = store.connect(db)
    stored = sum(b.frame_count for r in results if r.get("session")
                 for b in store.get_session(conn, r["session"]).blocks)
    conn.close()
    newest = [d for w in watched for d in w["newest"]]
    oldest = [d for w in watched for d in w["oldest"]]
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return {"stations": n, "watchers": watchers, "sent": sum(r.get("sent", 0) for r in results), "stored": stored,
            "cpu_pct": cpu_pct, "messages": sum(w["messages"] for w in watched),
            "dropped": sum(w["dropped"] for w in watched),
            "newest": newest, "oldest": oldest, "said": [r["said"] for r in results if "said" in r]}


def _pct(xs, q) -> str:
    return f"{np.percentile(xs, q) * 1000:.0f}" if xs else "–"


def run(args) -> int:
    from host.bench.docs import replace_section
    from host.errors import UserError
    try:
        counts = [int(x) for x in args.stations.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--stations wants counts separated by commas, e.g. 1,5,10,20 (got {args.stations!r})") from None
    if not counts or any(not 1 <= c <= 50 for c in counts):
        raise UserError("--stations wants counts from 1 to 50")
    load0 = os.getloadavg()[0]
    pg_server = None
    if args.postgres:
        from host.bench.pgserver import PgServer, bin_dir
        if bin_dir() is None:
            raise UserError("--postgres needs PostgreSQL's server binaries (apt-get install postgresql)")
        pg_server = PgServer().start()
    try:
        rows = [one_run(n, args.watchers, args.duration_s, pg_server) for n in counts]
    finally:
        if pg_server is not None:
            pg_server.close()
    for r in rows:
        n = r["stations"]
        print(f"{n} stations: {r['sent']} frames sent, {r['stored']} stored, dashboard CPU {r['cpu_pct']:.0f} %, "
              f"delay newest p50/p95 {_pct(r['newest'], 50)}/{_pct(r['newest'], 95)} ms, "
              f"oldest {_pct(r['oldest'], 50)}/{_pct(r['oldest'], 95)} ms", flush=True)
        for said in r["said"]:
            print(f"  a station said: {said}")
    table = ["| stations | watchers | frames sent | frames stored | dashboard CPU (% of a core) | messages to watchers "
             "| delay, newest frame p50 / p95 (ms) | delay, oldest frame p50 / p95 (ms) | stations that waited for the database's lock | watcher connections dropped |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        table.append(f"| {r['stations']} | {r['watchers']} | {r['sent']:,} | {r['stored']:,} | {r['cpu_pct']:.0f} | "
                     f"{r['messages']:,} | {_pct(r['newest'], 50)} / {_pct(r['newest'], 95)} | "
                     f"{_pct(r['oldest'], 50)} / {_pct(r['oldest'], 95)} | {len(r['said'])} | {r['dropped']} |")
    text = "\n".join(table)
    print(text)
    if args.write_docs:
        cmd = "hiplevel bench clinic " + " ".join(sys.argv[3:])
        replace_section(args.write_docs, HEADING, (
            f"Command: `{cmd.strip()}`  \nMachine: {os.cpu_count()} cores shared with other work (load average "
            f"{load0:.2f} at the start). Per run: a fresh {'PostgreSQL' if args.postgres else 'SQLite'} database, `hiplevel serve` as its own process on "
            f"loopback, each station a real `StreamRunner` + `Recorder` in its own process (as each is its own machine) fed a "
            f"simulated sensor at {RATE_HZ} Hz on its real-time schedule for {args.duration_s:g} s, and "
            f"{args.watchers} WebSocket clients signed in through the form, each watching one station.\n\n{text}\n\n"
            "Delay: from a frame's host receive time (the station's `time.monotonic()`) to the watcher receiving the "
            "message that carries it, on the same machine's clock. The newest frame of a message shows the dashboard's "
            "own delay (poll every 1/30 s, the pipeline, the WebSocket); the oldest also waited for the recorder's "
            "next commit (every 0.5 s), so a frame's delay lies between the two. Dashboard CPU: its process, all "
            "threads, while the stations streamed. Stations (one process each), the database server and the watchers share the same cores. "
            "A station that waited for the lock said so (`Recording is waiting: ... busy`)"
            + (": on PostgreSQL stations write side by side, so none should. " if args.postgres else
               ": SQLite has one writer at a time, so many stations' commits queue behind each other and the live "
               "view falls behind by as much; they are stored all the same. ")
            + "A watcher whose connection dropped (an unanswered keepalive while the cores are saturated) opened it "
            "again, as the dashboard's page does; the count says how often."))
    lost = [r for r in rows if r["stored"] != r["sent"]]
    return 1 if lost else 0
