"""One live session as the user runs it: the link, the pipeline, the sinks, and the window or the
console view, wired together and torn down in order. `hiplevel run` and `hiplevel demo` both call
`run_live`; they differ only in how they got the link and the settings.

In: a Transport (host.links), a PipelineConfig and `LiveOptions` (view, side outputs, audio,
recording, LSL). Out: the cue (host.sinks.audio), the live window (host.gui.live_window) or console view
(host.sinks.console), the recording (host.sinks.recorder), the optional JSON event log and angle
CSV, the optional Lab Streaming Layer outlets (host.sinks.lsl), and the summary printed at the end. The pipeline runs on an asyncio loop: on the main thread
headless, on a worker thread under the window; window commands cross over through
`SessionControls`, whose every call is thread-safe (`StreamRunner.call`).
"""
from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass

from host.errors import UserError
from host.processing.pipeline import PipelineConfig


@dataclass
class LiveOptions:
    headless: bool = False
    events: str | None = None         # JSON lines path, '-' = stdout (then messages go to stderr)
    angles: str | None = None         # per-sample angle CSV path
    mute: bool = False
    volume: float = 0.6
    private_audio: bool = False       # the demo: start a silent private sound server if none answers
    record: bool = True
    db: str | None = None
    patient: str = "default"
    share_live: bool = False          # --share-live: the paired clinic watches (host.sinks.clinic_link)
    title: str = "hiplevel"
    rate_hz: int | None = None        # ask the sensor for this sample rate (SET_RATE); None: its own
    lsl: object | None = None         # host.sinks.lsl.LslSettings: stream to LSL (--lsl)


class SessionControls:
    """What the GUI may ask of a running session; each call crosses to the pipeline's thread."""

    def __init__(self, session, player, recorder=None):
        self.session, self.player, self.recorder = session, player, recorder

    def recalibrate(self):
        self.session.call(self.session.pipeline.recalibrate)

    def set_threshold(self, side: str, deg: float):
        self.session.call(self.session.pipeline.set_threshold, side, deg)

    def end_set(self):
        self.session.call(self.session.pipeline.end_set, True)

    def set_muted(self, muted: bool):
        if self.player is not None:
            self.player.set_muted(muted)

    def add_marker(self, label: str):
        """A therapist's marker at the sensor time of the latest sample (stored with the recording)."""
        if self.recorder is None:
            raise ValueError("this session is not being recorded")
        self.recorder.marker(label, self.session.pipeline.t_s)

    def set_patient(self, label: str):
        """Record the session under this patient label (ValueError with the reason if refused)."""
        if self.recorder is None:
            raise ValueError("this session is not being recorded")
        self.recorder.set_patient(label)




def _choose_window(headless: bool, say) -> bool:
    """True when the live window can open; otherwise the console view (said once, in words)."""
    if headless:
        return False
    try:
        from host.gui.display import qt_display_available
        if qt_display_available():
            return True
        say("No display found: showing the console view.")
    except ImportError as e:  # Qt's libraries missing: the console view still works
        say(f"The window cannot open ({e}); showing the console view.")
    return False


def _run_window(session, live, player, recorder, title: str) -> None:
    from host.gui.live_window import run_gui
    thread = None

    def start():
        nonlocal thread
        thread = session.start_in_thread()

    def stop():
        session.stop()
        if thread is not None:
            thread.join(timeout=3)

    recording = recorder is not None and recorder.failed is None
    run_gui(live, start=start, stop=stop, commands=SessionControls(session, player, recorder), title=title,
            patients=recorder.known_patients() if recording else None,
            patient=recorder.patient if recording else None)


USER_END_REASON = "ended by the user"  # Ctrl-C on a headless run: the normal way to stop a real sensor


async def _run_headless(session, live, out, say):
    """The console view beside the session. The first Ctrl-C (SIGINT) ends the session as the user
    asked: the set is closed, the summary and the `end` event are written, the exit status is 0. A
    second Ctrl-C aborts (KeyboardInterrupt, exit status 130, the session is left interrupted)."""
    from host.sinks.console import run_with_console
    loop = asyncio.get_running_loop()

    def on_sigint():
        loop.remove_signal_handler(signal.SIGINT)  # back to Python's default: the next one aborts
        say("\nCtrl-C: ending the set and the session (Ctrl-C again to abort).")
        session.stop(USER_END_REASON)
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # no Unix signals, or not the main thread
        pass
    try:
        return await run_with_console(session, live, out)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_live(transport, cfg: PipelineConfig, opts: LiveOptions) -> int:
    """Run one live session to its end; 0 when the stream ended normally, 1 when it broke off.
    Raises UserError when the link never opened (the reason is all there is to say)."""
    from host.session.runner import StreamRunner
    from host.sinks.angle_trace import AngleTrace
    from host.sinks.audio import AudioCueSink, close_cue_player, open_cue_player
    from host.sinks.event_log import EventLog
    from host.sinks.live import LiveBuffer
    from host.sinks.lsl import open_sink as open_lsl
    from host.sinks.recorder import open_recorder

    from host.links.base import TransportError
    text_out = sys.stderr if opts.events == "-" else sys.stdout
    say = lambda msg: print(msg, file=text_out, flush=True)
    try:  # the link first: a wrong port is the one thing to say, before any word on sound or display
        transport.prepare()
    except TransportError as e:
        raise UserError(str(e)) from None
    lsl = open_lsl(opts.lsl)  # UserError when LSL cannot run here: said before anything starts
    live = LiveBuffer()

    def report(message: str) -> None:  # a side output's trouble: said once, shown where the user looks
        say(message)
        live.update_status(message=message)

    events = EventLog(opts.events, report=report if opts.events != "-" else None)
    trace = AngleTrace(opts.angles, report=report) if opts.angles else None
    window = _choose_window(opts.headless, say)
    player = open_cue_player(opts.mute, opts.volume, opts.private_audio, say)
    recorder = open_recorder(opts, cfg, say, live)  # None without recording; never stops the session
    session = StreamRunner(transport, cfg, events=events, live=live,
                           cue=AudioCueSink(player) if player else None, trace=trace, recorder=recorder,
                           rate_hz=opts.rate_hz)
    if lsl is not None:
        lsl.attach(session)
    share = None
    if opts.share_live and recorder is not None:
        from host.sinks.clinic_link import start_live_share
        share = start_live_share(db_of(opts), lambda: recorder.session_id, say)
    try:
        if window:
            _run_window(session, live, player, recorder, opts.title)
            summary = session.summary
        else:
            summary = asyncio.run(_run_headless(session, live, text_out, say))
    finally:
        # the recording first: whatever a side output does at its close must not cost the session
        _close_each(say, ("the recording", recorder and recorder.close), ("the angle file", trace and trace.close),
                    ("the event log", events.close), ("the LSL streams", lsl and lsl.close),
                    ("the cue sound", lambda: close_cue_player(player)), ("live sharing", share and share.close))
    if summary.open_failed:
        raise UserError(summary.reason)
    say(summary.text())
    if recorder is not None:
        say(recorder.summary_line())
        from host.sinks.clinic_link import auto_upload
        auto_upload(db_of(opts), say)  # paired: the finished session (and any left before) goes to the clinic
    return 0 if summary.ok else 1


def db_of(opts: LiveOptions):
    from host import store
    return opts.db or store.default_db_path()


def _close_each(say, *steps) -> None:
    """Close every output even when one of them fails; a failure is one sentence, never a traceback."""
    for what, close in steps:
        if not close:
            continue
        try:
            close()
        except Exception as e:  # noqa: BLE001 - the other outputs must still be closed
            say(f"Closing {what} failed: {e}.")
