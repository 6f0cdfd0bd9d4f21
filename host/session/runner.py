"""Runs one live session: transport -> decoder -> pipeline -> sinks, on an asyncio loop.

In: an opened-on-demand `Transport` and the session's settings. Out: events (JSON log, live
status, recorder), the raw frames to the recorder, the audio cue, an optional per-sample angle CSV,
and a `SessionSummary` when the stream ends. Frames that arrived late (re-sent after a BLE dropout)
are recorded and counted but never sound the cue. The loop runs on the main thread headless, or on a
worker thread under the GUI (`start_in_thread`); GUI commands cross over with `Session.call`
(`loop.call_soon_threadsafe`; see `Commands` in host/cmd_run.py).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from host.sinks.event_log import EventLog
from host.processing.exercise import summary_text
from host.sinks.live import LiveBuffer
from host.processing.pipeline import Pipeline, PipelineConfig
from host.protocol.frames import Command, FrameType, SampleDecoder, encode_frame
from host.processing.timing import ClockMap
from host.links.base import Transport, TransportError

log = logging.getLogger(__name__)

NO_DATA_WARN_S = 3.0


@dataclass
class SessionSummary:
    reason: str = ""
    ok: bool = True
    open_failed: bool = False  # never connected: the reason is all there is to say
    samples: int = 0
    lost_samples: int = 0
    reps: list = field(default_factory=list)
    cue_count: int = 0
    sets: list = field(default_factory=list)
    frame_errors: dict = field(default_factory=dict)
    clock_drift_ppm: float = 0.0

    def as_event(self, t: float) -> dict:
        return {"event": "end", "t": round(t, 4), "reason": self.reason, "samples": self.samples,
                "lost_samples": self.lost_samples, "reps": len(self.reps),
                "cued_reps": sum(1 for r in self.reps if r.get("cued")),
                "frame_errors": self.frame_errors, "clock_drift_ppm": round(self.clock_drift_ppm, 1)}

    def text(self) -> str:
        lines = [f"Session ended: {self.reason}."]
        cued = sum(1 for r in self.reps if r.get("cued"))
        if self.reps or not any(s.get("event") == "walk_summary" for s in self.sets):
            lines.append(f"Reps: {len(self.reps)} ({cued} with the cue).")
        lines += [summary_text(s) for s in self.sets]
        lines.append(f"Samples: {self.samples}, lost: {self.lost_samples}"
                     + (f", damaged frames skipped: {sum(self.frame_errors.values())}" if self.frame_errors else "")
                     + ".")
        return "\n".join(lines)


class AudioCueSink:
    """Pipeline cue state -> CuePlayer calls, only when something audible changes: the target
    chime once per crossing, the fault tone on/off with its pitch following the excess."""

    def __init__(self, player):
        self.player = player
        self._on = False
        self._last_update = 0.0

    def update(self, kind: str, on: bool, audible: bool, excess_deg: float, low_side: str) -> None:
        from host.sinks.audio import fault_pitch_hz
        pan = 0.6 if low_side == "right" else -0.6  # toward the low side
        if kind == "target":
            if on and not self._on and audible:
                self.player.play_target(pan)
            self._on = on
            return
        on = on and audible
        if on != self._on or (on and time.monotonic() - self._last_update > 0.02):
            self.player.set_fault(on, fault_pitch_hz(excess_deg), pan)
            self._on = on
            self._last_update = time.monotonic()


class AngleTrace:
    """Per-sample angles as CSV: seq, t_device_us, obliquity_deg, forward_tilt_deg."""

    def __init__(self, path: str):
        self.file = open(path, "w", buffering=1 << 16)
        self.file.write("seq,t_device_us,obliquity_deg,forward_tilt_deg\n")

    def __call__(self, seq, t_device_us, obl, fwd):
        self.file.write(f"{seq},{t_device_us},{obl:.5f},{fwd:.5f}\n")

    def close(self):
        self.file.close()


class Session:
    def __init__(self, transport: Transport, cfg: PipelineConfig, events: EventLog | None = None,
                 live: LiveBuffer | None = None, cue=None, trace=None, no_data_timeout_s: float = 15.0,
                 recorder=None):
        self.transport = transport
        # recorder: optional sink with frame(t_host_s, frame_bytes), event(dict); it must never raise
        # into the live path (it reports its own problems) and it is closed by whoever made it.
        self.recorder = recorder
        self.events = events
        self.live = live or LiveBuffer()
        self.summary = SessionSummary()
        self.pipeline = Pipeline(cfg, emit=self._emit, live=self.live, cue=cue, trace=trace)
        self.decoder = SampleDecoder()
        self.clock = ClockMap()
        self.no_data_timeout_s = no_data_timeout_s
        self.loop = None
        self._stop = None
        self._link_down = False  # a self-reconnecting link is down: silence is expected, not an error
        transport.on_event = self._link_event

    def _emit(self, event: dict) -> None:
        if "t" in event:
            event["t"] = round(float(event["t"]), 4)
        kind = event["event"]
        if kind == "rep":
            self.summary.reps.append(event)
            self.live.update_status(last_rep=event, reps=len(self.summary.reps))
        elif kind == "cue_on":
            self.summary.cue_count += 1
        elif kind == "set_summary":
            self.summary.sets.append(event)
            self.live.update_status(last_summary=event)
        elif kind == "step":
            mid_t = 0.5 * (event["contact_t"] + event["end_t"])  # the bar goes under the step's dip in the curve
            recent = self.live.status.steps[-59:] + [(mid_t, event["swing_side"], event["drop_deg"])]
            self.live.update_status(last_step=event, steps=recent)
        elif kind == "walk_summary":
            self.summary.sets.append(event)
            self.live.update_status(last_summary=event)
        if self.events is not None:
            self.events.write(event)
        if self.recorder is not None:
            self.recorder.event(event)

    LINK_STATES = {"connected": "streaming", "disconnected": "disconnected",
                   "reconnecting": "reconnecting", "gave_up": "error"}

    def _link_event(self, kind: str, **fields) -> None:
        self._emit({"event": kind, "t": self.pipeline.t_s, **fields})
        if kind == "sensor_restarted":  # its numbering and clock began again
            self.decoder.next_seq = None
            self.pipeline.restart_segment()
        if kind in self.LINK_STATES:
            self._link_down = kind in ("disconnected", "reconnecting")
            message = {"disconnected": "Sensor connection lost: reconnecting…",
                       "reconnecting": "Looking for the sensor…"}.get(kind, fields.get("reason", ""))
            self.live.update_status(link=self.LINK_STATES[kind], message=message)

    # ---- thread-safe control, for the GUI ----
    def call(self, fn, *args) -> bool:
        """Run fn(*args) on the session's loop; False when the session has already ended."""
        if self.loop is None or self.loop.is_closed():
            return False
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            return False
        return True

    def stop(self) -> None:
        if self._stop is not None:
            self.call(self._stop.set)

    async def run(self) -> SessionSummary:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        s = self.summary
        try:
            await self.transport.open()
        except TransportError as e:
            s.ok, s.open_failed, s.reason = False, True, str(e)
            self.live.update_status(link="error", message=str(e), ended=True)
            return s
        try:
            try:
                await self.transport.send(encode_frame(Command(FrameType.CMD_START)))
            except TransportError as e:
                s.ok, s.reason = False, str(e)
                return s
            await self._stream()
        finally:
            await self.transport.close()
        self.pipeline.end_set()
        s.samples, s.lost_samples = self.pipeline.samples, self.pipeline.lost_samples
        s.frame_errors = dict(self.decoder.errors)
        deframer = getattr(self.transport, "deframer", None)  # serial byte-level errors
        if deframer is not None:
            s.frame_errors.update(deframer.errors)
        s.clock_drift_ppm = self.clock.drift_ppm
        self._emit(s.as_event(self.pipeline.t_s))
        self.live.update_status(ended=True, link="ended" if s.ok else "error", message=s.reason,
                                cue_on=False)
        return s

    async def _stream(self) -> None:
        s, dec = self.summary, self.decoder
        stop_wait = asyncio.ensure_future(self._stop.wait())
        last_data = time.monotonic()
        drained = 0
        try:
            while True:
                item = self.transport.read_nowait()
                if item is not None:
                    drained += 1
                    if drained % 64 == 0:  # a long backlog: let the console view and GUI commands run
                        await asyncio.sleep(0)
                        if self._stop.is_set():
                            s.reason = "stopped by the user"
                            return
                else:
                    read = asyncio.ensure_future(self.transport.read())
                    done, _ = await asyncio.wait({read, stop_wait}, timeout=NO_DATA_WARN_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if stop_wait in done:
                        read.cancel()
                        s.reason = "stopped by the user"
                        return
                    if not done:
                        read.cancel()
                        silent = time.monotonic() - last_data
                        if self._link_down:  # the transport is reconnecting; it gives up by itself
                            last_data = time.monotonic()
                        elif silent > self.no_data_timeout_s:
                            s.ok, s.reason = False, f"no data from the sensor for {silent:.0f} s"
                            return
                        else:
                            self.live.update_status(message=f"No data from the sensor for {silent:.0f} s…")
                        continue
                    item = read.result()
                    if item is None:
                        s.ok = dec.stopped
                        s.reason = ("the sensor finished the set" if dec.stopped else
                                    f"lost the sensor ({self.transport.lost_reason or 'link closed'})")
                        return
                last_data = item[0]
                self._handle(item)
                if dec.stopped:
                    s.reason = "the sensor finished the set"
                    return
        finally:
            stop_wait.cancel()

    def _handle(self, item) -> None:
        """One frame from the transport: record it, decode it, run its samples through."""
        t_host, frame = item
        late = self.transport.late
        if self.recorder is not None:
            self.recorder.frame(t_host, frame, late)
        batch = self.pipeline.feed_frame(self.decoder, frame, t_host, live=not late)
        if batch is not None and not late:  # a re-sent frame says nothing about the clocks
            self.clock.add(batch.t_device_us[-1] * 1e-6, t_host)

    def start_in_thread(self) -> threading.Thread:
        """Run the session on its own thread with its own event loop (used under the GUI)."""
        def target():
            asyncio.run(self.run())
        thread = threading.Thread(target=target, name="hiplevel-pipeline", daemon=True)
        thread.start()
        return thread
