"""The live view's data: every block being recorded now, tailed from the session database.

In: the frames and events a station's recorder (host.sinks.recorder) commits into the shared
database, read every 1 / PLOT_HZ s (`store.frames_after`, `store.events_after`). The frames go
through the same decoder and pipeline as live (host.processing.pipeline, with the block's stored
settings from host.session.review.config_for) to give the angle; the recorded events give the rest:
reps, the cue's state, the link's state and the threshold as changed live. This works the same for
a clinic station and for any recorder writing into the database.
Out: one JSON message per tick to every WebSocket watching the block (`BlockHub.subscribe`): the new
angle points, the latest angle, threshold, reps, cue and link state. Browsers acknowledge each
message; `BlockHub.delays_s` keeps the delay from a frame's host receive time to the browser (of
each message's newest frame; `oldest_delays_s` of its oldest).

The delay is measured on one clock: frames carry the station's `time.monotonic()` (system-wide on
Linux), so it is only meaningful when the station runs on the server's machine (tests, the clinic
benchmark); the browser's receive time is taken as the send time plus half the round trip.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import math
import time

from host import store
from host.processing.pipeline import Pipeline
from host.protocol.frames import SampleDecoder
from host.session.review import config_for

PLOT_HZ = 30.0           # ticks per second; the browser redraws on its own (requestAnimationFrame)
MAX_POINTS = 600         # per message: a late viewer catching up gets the newest points
STALE_S = 5.0            # no new frame for this long: the live view says so
QUEUE_MAX = 64           # messages waiting for one slow browser; older ones are dropped

log = logging.getLogger(__name__)


class BlockTail:
    """One block's frames and events, read incrementally; runs on a worker thread (one at a time)."""

    def __init__(self, db, block_id: int):
        self.conn = store.connect(db, create=False)
        self.block = store.block(self.conn, block_id)
        if self.block is None:
            raise LookupError(block_id)
        self.pipeline = Pipeline(config_for(self.block), trace=self._trace)
        self.decoder = SampleDecoder()
        self.last_n, self.last_event = -1, 0
        self.points: list[tuple[float, float]] = []
        self.free = self.block.free_side
        self.status = {"block": block_id, "session": self.block.session_id, "exercise": self.block.exercise,
                       "free_side": self.free, "threshold_deg": getattr(self.block, f"threshold_{self.free}_deg"),
                       "reps": 0, "cued_reps": 0, "last_rep": None, "cue": False, "link": "waiting for data",
                       "calibrated": False, "ended": False, "angle_deg": None, "frames": 0}
        self.newest_t_host_s: float | None = None
        self.new_frame_at = time.monotonic()

    def _trace(self, seq, t_us, obl, fwd) -> None:
        self.points.append((round((t_us - self.pipeline.t0_us) * 1e-6, 4), round(float(obl), 3)))

    def step(self) -> dict:
        """Read what was committed since the last step; the message for the browsers."""
        self.points = []
        newest = oldest = None
        while True:
            rows = store.frames_after(self.conn, self.block.id, self.last_n)
            for n, t_host_s, data, late in rows:
                self.pipeline.feed_frame(self.decoder, data, t_host_s, on_time=not late)
                self.last_n, newest = n, t_host_s
                oldest = t_host_s if oldest is None else oldest
            if len(rows) < 4096:
                break
        for eid, _t_host, e in store.events_after(self.conn, self.block.id, self.last_event):
            self.last_event = eid
            self._apply(e)
        now = time.monotonic()
        if newest is not None:
            self.newest_t_host_s, self.new_frame_at = newest, now
        s = self.status
        s["frames"] = self.last_n + 1
        if self.points:
            s["angle_deg"] = self.points[-1][1]
        s["stale_s"] = round(now - self.new_frame_at, 1) if now - self.new_frame_at > STALE_S else 0
        return {**s, "points": self.points[-MAX_POINTS:], "t_host_s": newest, "t_host_oldest_s": oldest}

    def _apply(self, e: dict) -> None:
        kind, s = e.get("event"), self.status
        if kind == "rep":
            s["reps"] += 1
            s["cued_reps"] += bool(e.get("cued"))
            s["last_rep"] = {k: e.get(k) for k in ("index", "low_side", "max_drop_deg", "cued")}
        elif kind == "cue_on":
            s["cue"] = True
        elif kind == "cue_off":
            s["cue"] = False
        elif kind == "calibrated":
            s["calibrated"] = True
        elif kind == "threshold_changed" and e.get("side") == self.free:
            s["threshold_deg"] = e.get("threshold_deg")
        elif kind in ("connected", "disconnected", "reconnecting", "gave_up"):
            s["link"] = kind
        elif kind == "end":
            s["ended"], s["cue"], s["link"] = True, False, f"ended: {e.get('reason', '')}"

    def close(self) -> None:
        self.conn.close()


class BlockHub:
    """One tail per watched block, shared by all its watchers; runs while anyone watches."""

    def __init__(self, db, block_id: int, plot_hz: float = PLOT_HZ):
        self.db, self.block_id, self.period_s = db, block_id, 1.0 / plot_hz
        self.watchers: set[asyncio.Queue] = set()
        self.task: asyncio.Task | None = None
        self.seq = 0
        self.sent: collections.OrderedDict[int, tuple[float, float, float]] = collections.OrderedDict()
        # per acknowledged message: the delay of its newest frame, and of its oldest (which waited
        # for the recorder's next commit, host.sinks.recorder.COMMIT_INTERVAL_S)
        self.delays_s: collections.deque = collections.deque(maxlen=100_000)
        self.oldest_delays_s: collections.deque = collections.deque(maxlen=100_000)
        self.messages = 0

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(QUEUE_MAX)
        self.watchers.add(q)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return q

    def unsubscribe(self, q) -> None:
        self.watchers.discard(q)

    def ack(self, seq, t_ack: float | None = None) -> float | None:
        """A browser got message `seq`: the delay from its newest frame's receive time, seconds."""
        t_ack = time.monotonic() if t_ack is None else t_ack
        sent = self.sent.get(seq) if isinstance(seq, int) else None
        if sent is None:
            return None
        t_send, t_newest, t_oldest = sent
        t_browser = t_send + (t_ack - t_send) / 2
        self.delays_s.append(t_browser - t_newest)
        self.oldest_delays_s.append(t_browser - t_oldest)
        return t_browser - t_newest

    async def _run(self) -> None:
        tail = None
        try:
            tail = await asyncio.to_thread(BlockTail, self.db, self.block_id)
            while self.watchers:
                t0 = time.monotonic()
                msg = await asyncio.to_thread(tail.step)
                self.seq += 1
                msg["seq"] = self.seq
                msg["delay_ms"] = round(self.delays_s[-1] * 1000) if self.delays_s else None
                if msg["t_host_s"] is not None:
                    self.sent[self.seq] = (time.monotonic(), msg["t_host_s"], msg["t_host_oldest_s"])
                    while len(self.sent) > 1000:
                        self.sent.popitem(last=False)
                for q in list(self.watchers):
                    if q.full():
                        q.get_nowait()  # a slow browser loses its oldest message, never the others
                    q.put_nowait(msg)
                self.messages += 1
                await asyncio.sleep(max(0.0, self.period_s - (time.monotonic() - t0)))
        except Exception as e:  # noqa: BLE001 - a damaged block must not take the server down: say it
            log.warning("live view of block %s stopped: %s", self.block_id, e)
            for q in list(self.watchers):
                if not q.full():
                    q.put_nowait({"error": f"the live view stopped: {e}"})
        finally:
            if tail is not None:
                await asyncio.to_thread(tail.close)


class LiveHubs:
    """The hubs of the blocks being watched, by block id."""

    def __init__(self, db, plot_hz: float = PLOT_HZ):
        self.db, self.plot_hz = db, plot_hz
        self.hubs: dict[int, BlockHub] = {}

    def hub(self, block_id: int) -> BlockHub:
        h = self.hubs.get(block_id)
        if h is None:
            h = self.hubs[block_id] = BlockHub(self.db, block_id, self.plot_hz)
        return h

    def delays_s(self, oldest: bool = False) -> list[float]:
        return [d for h in self.hubs.values() for d in (h.oldest_delays_s if oldest else h.delays_s)
                if math.isfinite(d)]
