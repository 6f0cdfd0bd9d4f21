"""Runs one live session: transport -> decoder -> pipeline -> sinks, on an asyncio loop.

In: an opened-on-demand `Transport` and the session's settings. Out: events (JSON log, live
status, recorder), the raw frames to the recorder, the audio cue, an optional per-sample angle CSV,
and a `RunSummary` when the stream ends. Frames that arrived late (re-sent after a BLE dropout)
are recorded and counted but never sound the cue. The loop runs on the main thread headless, or on a
worker thread under the GUI (`start_in_thread`); GUI commands cross over with `StreamRunner.call`
(`loop.call_soon_threadsafe`; see `SessionControls` in host/session/live_app.py).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from host.sinks.event_log import EventLog
from host.processing.exercise import summary_text
from host.sinks.live import LiveBuffer
from host.processing.pipeline import Pipeline, PipelineConfig
from host.protocol.frames import Command, FrameType, SampleDecoder, encode_frame, fault_message
from host.processing.timing import ClockMap
from host.links.base import Transport, TransportError

log = logging.getLogger(__name__)

NO_DATA_WARN_S = 3.0
# A sensor that reports a fault retries its chip once a second (hiplevel_core.IMU_RETRY_US): after
# three failed tries there is no point in waiting out the whole no-samples bound.
FAULT_GIVE_UP_S = 3.0


@dataclass
class RunSummary:
    reason: str = ""
    ok: bool = True
    open_failed: bool = False  # never connected: the reason is all there is to say
    samples: int = 0
    lost_samples: int = 0
    reps: list = field(default_factory=list)
    cue_count: int = 0
    sets: list = field(default_factory=list)
    frame_errors: dict = field(default_factory=dict)
    clock_drift_ppm: float | None = 0.0  # None: a simulation's time scale, not a clock's drift
    time_scale: float | None = None      # device seconds per host second, when simulated
    clock_jumps: list = field(default_factory=list)  # jump_s of each clock_jump event
    calibrated: bool = False
    calibration_failures: list = field(default_factory=list)  # the calibration_failed events

    def as_event(self, t: float) -> dict:
        return {"event": "end", "t": round(t, 4), "reason": self.reason, "samples": self.samples,
                "lost_samples": self.lost_samples, "reps": len(self.reps),
                "cued_reps": sum(1 for r in self.reps if r.get("cued")),
                "frame_errors": self.frame_errors,
                "clock_drift_ppm": None if self.clock_drift_ppm is None else round(self.clock_drift_ppm, 1),
                **({"time_scale": round(self.time_scale, 3)} if self.time_scale is not None else {}),
                "calibrated": self.calibrated, "calibration_failures": len(self.calibration_failures),
                **({"calibration_last_failure": self.calibration_failures[-1]["reason"]}
                   if self.calibration_failures and not self.calibrated else {})}

    def text(self) -> str:
        lines = [f"Session ended: {self.reason}."]
        if not self.calibrated and self.samples:
            fails = self.calibration_failures
            lines.append("Calibration never finished"
                         + (f" ({len(fails)} attempt(s) refused; the last: {fails[-1]['message']})" if fails else "")
                         + ", so no reps were counted. The recording keeps all the data: `hiplevel replay "
                           "SESSION --calibration standing` calibrates from its first still phase and counts "
                           "the reps.")
        cued = sum(1 for r in self.reps if r.get("cued"))
        silent = sum(1 for r in self.reps if r.get("cued") and r.get("feedback_scheduled", True)
                     and not r.get("feedback_given"))
        if self.reps or not any(s.get("event") == "walk_summary" for s in self.sets):
            lines.append(f"Reps: {len(self.reps)} ({cued} with the cue"
                         + (f"; {silent} of them without a tone: no sound output, or muted" if silent else "")
                         + ").")
        lines += [summary_text(s) for s in self.sets]
        lines.append(f"Samples: {self.samples}, lost: {self.lost_samples}"
                     + (f", damaged frames skipped: {sum(self.frame_errors.values())}" if self.frame_errors else "")
                     + ".")
        if self.clock_jumps:
            lines.append(f"The sensor's clock jumped {len(self.clock_jumps)} time(s) "
                         f"({', '.join(f'{j:+.1f} s' for j in self.clock_jumps)}); the session's time "
                         f"follows the sample count across each jump.")
        return "\n".join(lines)


def internal_error_reason(e: BaseException) -> str:
    """The end reason for a session stopped by a bug: one sentence without a traceback."""
    return f"live feedback stopped after an internal error ({type(e).__name__}: {e})"


class StreamRunner:
    def __init__(self, transport: Transport, cfg: PipelineConfig, events: EventLog | None = None,
                 live: LiveBuffer | None = None, cue=None, trace=None, no_data_timeout_s: float = 15.0,
                 recorder=None, steering=None, rate_hz: int | None = None):
        self.transport = transport
        self.rate_hz = rate_hz  # asked of the sensor before START; its INFO says what it took
        # steering: recorded commands of a live run (threshold_changed events, set_summary events of
        # a set the user ended), applied again at their times when a stored block is replayed.
        self._steering = sorted((e for e in steering or () if isinstance(e.get("t"), (int, float))),
                                key=lambda e: e["t"])
        # recorder: optional sink with frame(t_host_s, frame_bytes), event(dict); it must never raise
        # into the live path (it reports its own problems) and it is closed by whoever made it.
        self.recorder = recorder
        self.events = events
        self.live = live or LiveBuffer()
        self.summary = RunSummary()
        self.pipeline = Pipeline(cfg, emit=self._emit, live=self.live, cue=cue, trace=trace)
        self.decoder = SampleDecoder()
        self.clock = ClockMap()
        self.no_data_timeout_s = no_data_timeout_s
        self.loop = None
        self._stop = None
        self._link_down = False  # a self-reconnecting link is down: silence is expected, not an error
        self._stop_reason = "stopped by the user"
        self._fault_told = False
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
        elif kind == "calibrated":
            self.summary.calibrated = True
        elif kind == "calibration_failed":
            self.summary.calibration_failures.append(event)
        elif kind == "clock_jump":
            self.summary.clock_jumps.append(event["jump_s"])
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
        if kind == "sensor_restarted":
            # The decoder finds a restart from sequence and time together, on every link and in every
            # replay, and the pipeline reports it; a link's own guess would report it twice.
            log.debug("link reports a sensor restart (%s); left to the decoder", fields)
            return
        self._emit({"event": kind, "t": self.pipeline.t_s, **fields})
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

    def stop(self, reason: str = "stopped by the user") -> None:
        """End the stream as the user asked: the set is closed, the summary and `end` event written."""
        self._stop_reason = reason
        if self._stop is not None:
            self.call(self._stop.set)

    async def run(self) -> RunSummary:
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
                if self.rate_hz is not None:
                    await self.transport.send(encode_frame(Command(FrameType.CMD_SET_RATE,
                                                                   rate_hz=self.rate_hz)))
                await self.transport.send(encode_frame(Command(FrameType.CMD_START)))
            except TransportError as e:
                s.ok, s.reason = False, str(e)
                return s
            try:
                await self._stream()
            except Exception as e:  # noqa: BLE001 - a bug must end the session in words, recorded
                log.exception("the pipeline failed")
                s.ok, s.reason = False, internal_error_reason(e)
        finally:
            await self.transport.close()
        self.pipeline.end_set()
        s.samples, s.lost_samples = self.pipeline.samples, self.pipeline.lost_samples
        s.frame_errors = self.frame_errors()
        if self.clock.simulated:  # e.g. `hiplevel sim --speed 4`: a time scale, not a drifting clock
            s.clock_drift_ppm, s.time_scale = None, self.clock.time_scale
        else:
            s.clock_drift_ppm = self.clock.drift_ppm
        self._emit(s.as_event(self.pipeline.t_s))
        self.live.update_status(ended=True, link="ended" if s.ok else "error", message=s.reason,
                                cue_on=False)
        return s

    async def _stream(self) -> None:
        s, dec = self.summary, self.decoder
        stop_wait = asyncio.ensure_future(self._stop.wait())
        last_data = last_samples = time.monotonic()  # any frame / a frame that carried samples
        warned_at = 0.0
        drained = 0
        try:
            while True:
                item = self.transport.read_nowait()
                if item is not None:
                    drained += 1
                    if drained % 64 == 0:  # a long backlog: let the console view and GUI commands run
                        await asyncio.sleep(0)
                        if self._stop.is_set():
                            s.reason = self._stop_reason
                            return
                else:
                    read = asyncio.ensure_future(self.transport.read())
                    done, _ = await asyncio.wait({read, stop_wait}, timeout=NO_DATA_WARN_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if stop_wait in done:
                        read.cancel()
                        s.reason = self._stop_reason
                        return
                    if not done:
                        read.cancel()
                        silent = time.monotonic() - last_data
                        quiet = time.monotonic() - last_samples
                        if self._link_down:  # the transport is reconnecting; it gives up by itself
                            last_data = last_samples = time.monotonic()
                        elif dec.fault and quiet > FAULT_GIVE_UP_S:  # the sensor said why nothing comes
                            s.ok, s.reason = False, fault_message(dec.fault)
                            return
                        elif silent > self.no_data_timeout_s:
                            s.ok, s.reason = False, f"no data from the sensor for {silent:.0f} s"
                            return
                        elif quiet > self.no_data_timeout_s:  # frames came, then silence: no samples
                            s.ok, s.reason = False, f"no samples from the sensor for {quiet:.0f} s"
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
                if self._handle(item) is not None or self._link_down:
                    last_samples = time.monotonic()
                else:
                    # Frames keep coming but none carries samples (an IMU that stalled behind working
                    # firmware, or only damaged frames): the same bound as silence, in its own words.
                    quiet = time.monotonic() - last_samples
                    if dec.fault and quiet > FAULT_GIVE_UP_S:  # the sensor said why no samples come
                        s.ok, s.reason = False, fault_message(dec.fault)
                        return
                    if quiet > self.no_data_timeout_s:
                        s.ok, s.reason = False, (f"the sensor stayed connected but sent no samples for {quiet:.0f} s "
                                               "(its motion sensor may have stopped)")
                        return
                    if quiet > NO_DATA_WARN_S and time.monotonic() - warned_at > 1.0:
                        warned_at = time.monotonic()
                        self.live.update_status(message=f"The sensor is connected but sent no samples for "
                                                        f"{quiet:.0f} s…")
                if dec.stopped:
                    s.reason = "the sensor finished the set"
                    if dec.fault:  # it finished without a working motion chip: say that
                        s.ok, s.reason = False, fault_message(dec.fault)
                    return
        finally:
            stop_wait.cancel()

    def _handle(self, item):
        """One frame from the transport: record it, decode it, run its samples through. Returns the
        batch of samples it carried, if any."""
        t_host, frame = item
        late = self.transport.late
        if self.recorder is not None:
            self.recorder.frame(t_host, frame, late)
        batch = self.pipeline.feed_frame(self.decoder, frame, t_host, on_time=not late)
        if self.decoder.fault and not self._fault_told:
            self._tell_fault()
        if batch is not None and not late:  # a re-sent frame says nothing about the clocks
            self.clock.add(batch.t_device_us[-1] * 1e-6, t_host)
        if self._steering:
            self._steer()
        return batch

    def _steer(self) -> None:
        """Apply the recorded commands that were given live after the sample just processed: a
        live command arrives between two frames, and its event has the time of the last sample
        before it (rounded to 0.1 ms, as every event time)."""
        now = round(self.pipeline.t_s, 4)
        while self._steering and self._steering[0]["t"] <= now:
            e = self._steering.pop(0)
            if e["event"] == "threshold_changed":
                try:
                    self.pipeline.set_threshold(e["side"], e["threshold_deg"])
                except (KeyError, TypeError, ValueError):  # a damaged or foreign record: keep going
                    pass
            elif e["event"] in ("set_summary", "walk_summary"):
                self.pipeline.end_set(by_user=True)

    def frame_errors(self) -> dict:
        """Skipped frames by reason: the decoder's, the serial deframer's and a third-party sensor
        driver's (skipped notifications, docs/sensors.md), summed once per reason
        (both count `truncated`, each for its own frames)."""
        total = Counter(self.decoder.errors)
        deframer = getattr(self.transport, "deframer", None)  # serial byte-level errors
        if deframer is not None:
            total.update(deframer.errors)
        total.update(getattr(self.transport, "link_errors", None) or {})  # a third-party sensor's driver
        return {k: v for k, v in sorted(total.items()) if v > 0}

    def _tell_fault(self) -> None:
        """Once per session: the sensor's fault as one plain sentence (event log, status line)."""
        self._fault_told = True
        text = fault_message(self.decoder.fault)
        sentence = text[0].upper() + text[1:] + "."
        self._emit({"event": "sensor_fault", "t": self.pipeline.t_s, "code": self.decoder.fault,
                    "message": sentence})
        self.live.update_status(message=sentence)

    def start_in_thread(self) -> threading.Thread:
        """Run the session on its own thread with its own event loop (used under the GUI). If the
        thread dies anyway, the live status says so (ended, link error, one sentence) for the window."""
        def target():
            try:
                asyncio.run(self.run())
            except BaseException as e:  # noqa: BLE001 - nobody else would hear of it on this thread
                log.exception("the session thread failed")
                self.summary.ok, self.summary.reason = False, internal_error_reason(e)
                self.live.update_status(ended=True, link="error", cue_on=False,
                                        message=self.summary.reason)
        thread = threading.Thread(target=target, name="hiplevel-pipeline", daemon=True)
        thread.start()
        return thread
