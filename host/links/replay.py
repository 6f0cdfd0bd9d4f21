"""A recorded block played back as a sensor link, so it goes through the same decoder, estimator and
exercise logic as live data (runner.StreamRunner, unchanged).

In: the frames of one block from the session store (host.store), with their original host receive
times and `late` flags (re-sent after a dropout), and the recorded link events (disconnected /
reconnected). Out: `read()` returns
`(t_host_s, frame_bytes)` exactly as recorded (original host times, so clock-drift estimates match
the live run), paced at `speed` times real time, or as fast as the pipeline takes them (`speed=None`).
Commands sent to it (START) are ignored: a recording cannot be steered. When the frames run out the
stream ends; if the recording has no end-of-stream frame (the app was killed), `lost_reason` says so.
"""
from __future__ import annotations

import asyncio
import time

from host import store
from host.links.base import Transport, TransportError

# link events that happened during the block and are replayed at their place (the first `connected`
# is emitted by open(), as every transport does)
_LINK_EVENTS = ("connected", "disconnected", "reconnecting")


class ReplayTransport(Transport):
    def __init__(self, conn, block: store.BlockInfo, speed: float | None = 1.0):
        super().__init__()
        if speed is not None and not speed > 0:
            raise ValueError("replay speed must be above 0")
        self.conn = conn
        self.block = block
        self.speed = speed
        self.description = f"replay of session {block.session_id} block {block.number}"
        self.frames_read = 0
        self.finished = False     # all recorded frames were delivered
        self._frames = None
        self._link_events: list[tuple[float, dict]] = []
        self._t0_rec = None       # first recorded host time
        self._t0_wall = None      # when it was replayed
        self._closed = False
        self.read_error: BaseException | None = None  # a database error that ended the stream early

    async def open(self) -> None:
        if self.block.frame_count == 0:
            raise TransportError(f"session {self.block.session_id} block {self.block.number} holds no sensor data")
        first_connected = True
        for t_host, ev in store.events(self.conn, self.block.id):
            if ev.get("event") in _LINK_EVENTS:
                if ev["event"] == "connected" and first_connected:
                    first_connected = False
                    continue
                self._link_events.append((t_host, ev))
        self._frames = store.frames(self.conn, self.block.id)
        self.on_event("connected", link=self.description)

    def _take(self):
        """The next recorded frame (replaying link events up to it), or None at the end."""
        if self._closed or self._frames is None:
            return None
        try:
            item = next(self._frames, None)
        except store.DB_ERRORS as e:  # a damaged page mid-block: the stream ends; review_block says why
            self.read_error, self._frames = e, None
            self.finished, self.lost_reason = False, "the rest of the recording cannot be read (the database is damaged)"
            return None
        if item is None:
            self.finished = True
            if self.block.end is None:
                self.lost_reason = "the recording ends here: it was interrupted"
            else:
                self.lost_reason = "end of the recording"
            return None
        t_host, frame, self.late = item
        while self._link_events and self._link_events[0][0] <= t_host:
            _, ev = self._link_events.pop(0)
            fields = {k: v for k, v in ev.items() if k not in ("event", "t")}
            self.on_event(ev["event"], **fields)
        self.frames_read += 1
        return t_host, frame

    def read_nowait(self):
        # only unpaced (--fast) replay has frames "already waiting"; paced replay must sleep
        return self._take() if self.speed is None else None

    async def read(self):
        item = self._take()
        if item is None:
            return None
        if self.speed is not None:
            t_host = item[0]
            if self._t0_rec is None:
                self._t0_rec, self._t0_wall = t_host, time.monotonic()
            due = self._t0_wall + (t_host - self._t0_rec) / self.speed
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return item

    async def send(self, frame_bytes: bytes) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        self._frames = None
