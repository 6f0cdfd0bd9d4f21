"""Cue latency through the real audio path: from a frame's arrival at the host to the tone's onset
in a recording of the sound server's output.

How a run goes:
1. Frames: the simulator's firmware (firmware_sim.device.SimDevice) encodes a scripted session,
   the scenario's calibration phase then N hip drops to `--drop` degrees on the free side, one every
   `--rep-s` seconds; each frame is due when its last sample has been taken (200 Hz, 4 samples per
   frame: one frame every 20 ms) plus a random link delay of 0 to `--jitter-ms`. Without that
   delay every frame would arrive at the same phase of the 10 ms audio callback period (20 ms
   frames, 10 ms blocks), and the wait for the next callback would be a constant set by luck.
2. Sound: a private PulseAudio server with a null sink (host.sinks.sound_server.PulseServer), or an existing
   server with `--server`; `parec` records the sink's monitor from before the session starts.
3. Stream: a real `host.session.runner.StreamRunner` (decoder -> pipeline -> host.sinks.audio.AudioCueSink -> CuePlayer) fed
   by host.links.memory.MemoryTransport, which hands each frame over on schedule and stamps
   t_host_s = time.monotonic() at hand-over: the frame's arrival. One session per exercise, each
   with its own recording: `keep-level` (the fault tone, `set_fault`) and `hip-dip` (the target
   chime, `play_target`), threshold `--threshold` for both.
4. Matching, per `cue_on` event: the frame that crossed is found from the event's device time t
   (t -> sample -> the frame carrying it; cross-checked against the frame the session was
   processing when the event came out). Its arrival is the start. The CuePlayer's onset note
   (`last_onset`, read at that cue's `cue_off`) gives when `set_fault` / `play_target` was called
   and when the audio callback began writing the cue. The end is the first burst in the recording that
   starts after the arrival (host.bench.audio_capture.bursts), moved to host time with the recording's own clock
   map (`Recording.host_time_of_frame`, which errs late by about a millisecond).

Out: per exercise (a row), a table (or `--json`) with p50 / p95 / max of arrival -> recorded onset
and the same for each stage (arrival -> cue call -> callback -> recorded onset), the counts that
say the measurement is whole (cues without a detectable onset, bursts without a cue, frame
cross-check mismatches: all must be 0) and the player's underflows. `--write-docs PATH` replaces
only the "## Cue latency" section of PATH (host.bench.docs; other sections belong to other benches).
Exit status 1 if any cue had no detectable onset (the numbers would then be incomplete).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from host.commands.argtypes import number, threshold_deg
from host.errors import UserError
from host.processing.exercise import THRESHOLD_DEFAULT_DEG

SECTION_HEADING = "Cue latency"
# a run with --speech gets its own section, so the two stand side by side for comparison
SPEECH_SECTION_HEADING = "Cue latency while spoken prompts play"
RATE_HZ = 200
SAMPLES_PER_FRAME = 4
MAX_LATENCY_S = 0.5           # a burst later than this after the arrival is not this cue's tone
TAIL_S = 0.4                  # keep recording after the session so the last fade-out is captured
TARGET_P95_MS = 50.0
CUE_OF_EXERCISE = {"keep-level": "fault tone", "hip-dip": "target chime"}


# -- argument types: bad values get argparse's plain usage message, never a traceback ------------
def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, not {v}")
        return v
    return parse


def _latency(text: str):
    if text in ("low", "high"):
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give low, high or seconds (e.g. 0.02)") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"latency must be above 0 and at most 1 s, not {text}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exercise", choices=[*CUE_OF_EXERCISE, "both"], default="both",
                   help="keep-level (fault tone), hip-dip (target chime) or both, one after the "
                        "other (default both)")
    p.add_argument("--cues", type=_int_at_least(1), default=60,
                   help="threshold crossings to measure (default 60; report at least 50)")
    p.add_argument("--threshold", type=threshold_deg, default=THRESHOLD_DEFAULT_DEG,
                   help=f"cue threshold, degrees of drop (default {THRESHOLD_DEFAULT_DEG:g})")
    p.add_argument("--drop", type=number(1.0, 40.0, what="a number from 1 to 40"), default=8.0,
                   help="how far each scripted drop goes, degrees (default 8)")
    p.add_argument("--rep-s", type=number(0.8, 30.0, what="a number from 0.8 to 30"), default=1.2,
                   help="seconds from one drop to the next (default 1.2)")
    p.add_argument("--blocksize", type=_int_at_least(16), default=480,
                   help="audio frames per callback at 48 kHz (default 480 = 10 ms)")
    p.add_argument("--latency", type=_latency, default="low",
                   help="PortAudio's suggested output latency: low, high or seconds (default low)")
    p.add_argument("--device", default="pulse",
                   help="output device for the cue player (default: pulse, the ALSA pulse plugin)")
    p.add_argument("--server", metavar="ADDRESS",
                   help="use this running PulseAudio/PipeWire server (e.g. unix:/run/user/1000/pulse/"
                        "native, or 'default') instead of starting a private one")
    p.add_argument("--monitor", metavar="SOURCE",
                   help="source to record (default: the private server's null sink monitor, or "
                        "@DEFAULT_MONITOR@ with --server)")
    p.add_argument("--jitter-ms", type=number(0.0, 15.0, what="a number from 0 to 15"), default=10.0,
                   help="random link delay per frame, 0 to this many ms (default 10: one audio "
                        "block, so arrivals fall at every phase of the audio callback)")
    p.add_argument("--seed", type=int, default=1, help="simulator and jitter seed (default 1)")
    p.add_argument("--link", choices=["memory", "ble"], default="memory",
                   help="memory: scripted frames handed to the session in-process, from frame "
                        "arrival to sound (default); ble: the simulated sensor's firmware over the "
                        "virtual radio, from the truth crossing the threshold to sound "
                        "(host.bench.latency_ble)")
    p.add_argument("--speech", action="store_true",
                   help="keep spoken prompts (espeak-ng) playing through the same stream the whole time; "
                        "cue onsets are then found in the left-minus-right signal, where the centred "
                        "voice cancels and the cue (panned toward the low side) remains")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--write-docs", type=Path, metavar="PATH",
                   help=f"also write the results into the '## {SECTION_HEADING}' section of PATH "
                        f"('## {SPEECH_SECTION_HEADING}' with --speech; other "
                        "sections are kept; the file is created if missing)")


# -- the scripted sensor ---------------------------------------------------------------------------
@dataclass
class ScriptedFrames:
    frames: list[tuple[float, bytes]]   # (due s after open, frame bytes), as MemoryTransport takes
    first_us: np.ndarray                # device time of each data frame's first sample
    n_samples: np.ndarray               # samples in each data frame
    index: np.ndarray                   # each data frame's index in `frames`
    duration_s: float
    calibration_s: float                # before the first drop: standing still (and bends, if any)


def scripted_frames(cues: int, drop_deg: float, rep_s: float, seed: int,
                    jitter_s: float = 0.0) -> ScriptedFrames:
    """The simulator's frames for calibration then `cues` drops, each due when its last sample was
    taken plus a random link delay from 0 to `jitter_s` (seeded; order is kept)."""
    from firmware_sim.device import SimDevice
    from firmware_sim.motion import Scenario
    from host.protocol.frames import DataFrame, decode_frame

    # The scenario's own calibration phase matches what the host's default calibration asks for.
    sc = Scenario(exercise="hip-dip", stance="left", drops_deg=[drop_deg] * cues, rep_s=rep_s,
                  end_still_s=0.5)
    # clock_ppm=0: device time is true time since boot, so a frame's due time follows from its own
    # timestamps (drift would not change any latency measured here).
    dev = SimDevice(sc, rate_hz=RATE_HZ, samples_per_frame=SAMPLES_PER_FRAME, seed=seed, clock_ppm=0.0)
    dev.streaming = True
    period_us = 1e6 / RATE_HZ
    rng = np.random.default_rng(seed)
    frames = [(0.0, dev.info_frame())]
    first, n, index = [], [], []
    for f in dev.frames_due(sc.duration_s + 1.0):  # all at once: the simulator vectorises that
        fr = decode_frame(f)
        if not isinstance(fr, DataFrame):
            continue
        taken_s = (fr.t_device_us + (len(fr.acc_raw) - 1) * period_us - dev.boot_us) * 1e-6
        first.append(fr.t_device_us)
        n.append(len(fr.acc_raw))
        index.append(len(frames))
        frames.append((max(frames[-1][0], taken_s + rng.uniform(0.0, jitter_s)), f))
    frames.append((frames[-1][0] + period_us * 1e-6, dev.stop_frame()))
    return ScriptedFrames(frames, np.array(first, dtype=np.int64), np.array(n), np.array(index),
                          sc.duration_s, sc.duration_s - cues * rep_s - sc.end_still_s)


def frame_of_event(sf: ScriptedFrames, t_event_s: float, t0_us: int) -> int | None:
    """Index (in sf.frames) of the frame carrying the sample at event time t (device s since t0).

    Event times are rounded to 0.1 ms and samples are 5 ms apart, so the nearest sample is exact.
    """
    period_us = 1e6 / RATE_HZ
    t_us = t0_us + t_event_s * 1e6
    j = int(np.searchsorted(sf.first_us, t_us + period_us / 2, side="right")) - 1
    if j < 0 or t_us > sf.first_us[j] + (sf.n_samples[j] - 0.5) * period_us:
        return None
    return int(sf.index[j])


# -- what happens during the session --------------------------------------------------------------
class CueTap:
    """The session's event sink (EventLog's `write`): notes each cue_on with the frame being
    processed (None without a scripted transport: the BLE bench), and at each cue_off the player's
    onset note for the cue that just ended."""

    def __init__(self, transport, player):
        self.transport, self.player = transport, player
        self.cue_ons: list[tuple[float, str, int | None]] = []  # (event t, kind, frame being processed)
        self.onsets: list = []                                   # host.sinks.audio.CueOnset notes

    def write(self, event: dict) -> None:
        if event["event"] == "cue_on":
            self.cue_ons.append((float(event["t"]), event.get("kind", "fault"),
                                 None if self.transport is None else self.transport.current_index))
        elif event["event"] == "cue_off":
            self.note_onset()

    def note_onset(self) -> None:
        o = self.player.last_onset
        if o is not None and (not self.onsets or self.onsets[-1] is not o):
            self.onsets.append(o)

    def close(self) -> None:
        pass


@dataclass
class CueResult:
    t_device_s: float
    kind: str                           # "fault" (tone) or "target" (chime)
    frame_index: int
    arrival_host_s: float
    requested_host_s: float | None      # set_fault(True) / play_target() called
    callback_host_s: float | None       # audio callback began writing the cue's first block
    dac_host_s: float | None            # PortAudio's predicted output time of that block
    onset_host_s: float | None          # the cue's onset in the recording
    onset_hz: float | None = None       # dominant frequency of the recording's first 60 ms from there

    def ms(self, a: str, b: str) -> float | None:
        ta, tb = getattr(self, a), getattr(self, b)
        return None if ta is None or tb is None else 1000.0 * (tb - ta)


def stats_ms(values: list[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(v, [50, 95])
    return {"n": int(len(v)), "p50": round(float(p50), 2), "p95": round(float(p95), 2),
            "max": round(float(v.max()), 2)}


def match_cues(sf: ScriptedFrames, t0_us: int, tap: CueTap, arrivals: list[float],
               onset_hosts: list[float]) -> tuple[list[CueResult], int, int]:
    """Per cue: its frame, the player's note and the recorded onset (host times of the bursts'
    starts, ascending). Returns (results, frame cross-check mismatches, bursts matched to no cue)."""
    results, mismatches = [], 0
    for t_ev, kind, processing in tap.cue_ons:
        idx = frame_of_event(sf, t_ev, t0_us)
        if idx is None or idx != processing:
            mismatches += 1
        idx = processing if idx is None else idx
        results.append(CueResult(t_ev, kind, idx, arrivals[idx], None, None, None, None))
    used = set()
    for k, r in enumerate(results):
        nxt = results[k + 1].arrival_host_s if k + 1 < len(results) else math.inf
        for o in tap.onsets:  # the player started this kind of cue while this cue was the latest
            if o.kind == r.kind and r.arrival_host_s <= o.requested_s < nxt:
                r.requested_host_s, r.callback_host_s, r.dac_host_s = o.requested_s, o.callback_s, o.dac_s
                break
        for j, t in enumerate(onset_hosts):
            if j not in used and r.arrival_host_s <= t < min(nxt, r.arrival_host_s + MAX_LATENCY_S):
                r.onset_host_s = t
                used.add(j)
                break
    return results, mismatches, len(onset_hosts) - len(used)


def summarise(exercise: str, results: list[CueResult], mismatches: int, extra_bursts: int,
              underflows: int, late_s: list[float]) -> dict:
    late_ms = 1000.0 * np.array(late_s) if late_s else np.zeros(1)
    return {
        "exercise": exercise,
        "cue": CUE_OF_EXERCISE[exercise],
        "cues": len(results),
        "onsets_found": sum(1 for r in results if r.onset_host_s is not None),
        "cues_without_onset": sum(1 for r in results if r.onset_host_s is None),
        "cues_without_player_note": sum(1 for r in results if r.callback_host_s is None),
        "bursts_without_cue": extra_bursts,
        "frame_mismatches": mismatches,
        "underflows": underflows,
        "latency_ms": stats_ms([r.ms("arrival_host_s", "onset_host_s") for r in results]),
        "stages_ms": {
            "pipeline": stats_ms([r.ms("arrival_host_s", "requested_host_s") for r in results]),
            "callback_wait": stats_ms([r.ms("requested_host_s", "callback_host_s") for r in results]),
            "output": stats_ms([r.ms("callback_host_s", "onset_host_s") for r in results]),
            "portaudio_predicted": stats_ms([r.ms("arrival_host_s", "dac_host_s") for r in results]),
        },
        "handover_late_ms": {"p95": round(float(np.percentile(late_ms, 95)), 2),
                             "max": round(float(late_ms.max()), 2)},
        "per_cue": [asdict(r) for r in results],
    }


# -- the run ----------------------------------------------------------------------------------------
def _sound_server(args):
    """(PulseServer we started or None, server address for the recorder, monitor source)."""
    from host.sinks import sound_server as pulse
    if args.server:
        address = args.server
        if address == "default":
            address = os.environ.get("PULSE_SERVER") or "unix:" + os.path.join(
                os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"), "pulse", "native")
        if not pulse.server_answers(address):
            raise UserError(f"no PulseAudio or PipeWire server answers at {address}")
        os.environ["PULSE_SERVER"] = address
        return None, address, args.monitor or "@DEFAULT_MONITOR@"
    try:
        server = pulse.PulseServer().start()
    except pulse.PulseServerError as e:
        raise UserError(str(e)) from None
    server.activate()
    return server, server.address, args.monitor or server.monitor_source


def run_exercise(exercise: str, sf: ScriptedFrames, args, player, address: str, monitor: str) -> dict:
    """One real session of `exercise` on the scripted frames, recorded; its row of results."""
    from host.bench import audio_capture
    from host.sinks import sound_server as pulse
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import PipelineConfig
    from host.session.runner import StreamRunner
    from host.sinks.audio import AudioCueSink
    from host.links.memory import MemoryTransport

    cfg = PipelineConfig(exercise=ExerciseConfig(
        exercise=exercise, stance="left", threshold_left_deg=args.threshold,
        threshold_right_deg=args.threshold))
    transport = MemoryTransport(sf.frames, description="scripted simulator frames")
    tap = CueTap(transport, player)
    session = StreamRunner(transport, cfg, events=tap, cue=AudioCueSink(player))
    underflows_before = player.underflows
    print(f"hiplevel bench latency: {exercise}, {args.cues} cues, about {sf.duration_s:.0f} s in "
          "real time…", file=sys.stderr, flush=True)
    try:
        recorder = audio_capture.SinkCapture(address, monitor).start()
    except pulse.PulseServerError as e:
        raise UserError(str(e)) from None
    talker = SpeechLoop(player) if getattr(args, "speech", False) else None
    try:
        summary = asyncio.run(session.run())
        time.sleep(TAIL_S)   # the last cue's fade-out, and its onset note if it never went off
        tap.note_onset()
    finally:
        if talker is not None:
            talker.stop()
        recording = recorder.stop()
    if not summary.ok:
        raise UserError(f"the {exercise} session did not finish normally: {summary.reason}")
    samples = recording.samples
    if talker is not None:  # the voice is centred (equal in both channels): L - R leaves the cue only
        samples = samples[:, 0] - samples[:, 1]
    found = audio_capture.bursts(samples, recording.samplerate)
    onset_hosts = [recording.host_time_of_frame(b.start) for b in found]
    results, mismatches, extra = match_cues(sf, int(session.pipeline.t0_us), tap,
                                            transport.arrival_host_s, onset_hosts)
    window = int(0.060 * recording.samplerate)  # says which sound was matched: tone or chime
    for r in results:
        if r.onset_host_s is not None:
            i = onset_hosts.index(r.onset_host_s)
            seg = samples[found[i].start: found[i].start + window]
            r.onset_hz = round(audio_capture.dominant_frequency_hz(seg, recording.samplerate), 1)
    row = summarise(exercise, results, mismatches, extra, player.underflows - underflows_before,
                    transport.late_s)
    if talker is not None:
        asked = [r.requested_host_s for r in results if r.requested_host_s is not None]
        row["speech_overlap"] = round(talker.share_speaking(asked), 3) if asked else None
        row["phrases_spoken"] = len(talker.spans)
    return row


class SpeechLoop:
    """Spoken phrases back to back on the player while the session runs (as `hiplevel today` says
    them, but without pauses), with when each played, to say how many cues fell inside speech."""
    PHRASES = ("Left leg: ten hip dips.", "Stand still.", "Bend forward slowly.", "Rest.", "Three.",
               "Well done.", "Switch legs.")

    def __init__(self, player):
        import threading
        from host.sinks.speech import synthesise
        self.player = player
        self.pcm = [synthesise(t, "en", player.samplerate) for t in self.PHRASES]
        self.spans: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        k = 0
        while not self._stop.is_set():
            if not self.player.voice_busy:
                pcm = self.pcm[k % len(self.pcm)]
                self.player.play_voice(pcm)
                t = time.monotonic()
                self.spans.append((t, t + len(pcm) / self.player.samplerate))
                k += 1
            time.sleep(0.005)

    def stop(self):
        self._stop.set()
        self._thread.join(2)

    def share_speaking(self, times: list[float]) -> float:
        return sum(any(a <= t < b for a, b in self.spans) for t in times) / len(times)


def measure(args) -> dict:
    from host.sinks.audio import AudioUnavailable, CuePlayer

    if args.drop < args.threshold + 1.0:
        raise UserError(f"the drop ({args.drop:g}°) must pass the threshold ({args.threshold:g}°) by "
                        "at least 1° so that every drop clearly crosses it")
    exercises = list(CUE_OF_EXERCISE) if args.exercise == "both" else [args.exercise]
    sf = scripted_frames(args.cues, args.drop, args.rep_s, args.seed, args.jitter_ms / 1000.0)
    load_before = os.getloadavg()
    server, address, monitor = _sound_server(args)
    player = None
    try:
        player = CuePlayer(device=args.device, blocksize=args.blocksize, latency=args.latency)
        try:
            player.start()
        except AudioUnavailable as e:
            raise UserError(str(e)) from None
        rows = [run_exercise(ex, sf, args, player, address, monitor) for ex in exercises]
        output_latency_s = player.output_latency_s
    finally:
        if player is not None:
            player.close()
        if server is not None:
            server.stop()
    return {
        "bench": "latency",
        "settings": {
            "cues_scripted": args.cues, "threshold_deg": args.threshold, "drop_deg": args.drop,
            "rep_s": args.rep_s, "calibration_s": round(sf.calibration_s, 2), "rate_hz": RATE_HZ,
            "samples_per_frame": SAMPLES_PER_FRAME, "jitter_ms": args.jitter_ms,
            "blocksize": args.blocksize, "samplerate_hz": player.samplerate,
            "latency": args.latency, "device": args.device,
            "server": "existing " + address if server is None else "private null sink",
            "monitor": monitor, "seed": args.seed, "speech": bool(getattr(args, "speech", False)),
            "output_latency_ms": None if output_latency_s is None else round(1000 * output_latency_s, 2),
            "load_average": [round(x, 2) for x in load_before],
        },
        "target_p95_ms": TARGET_P95_MS,
        "rows": rows,
    }


# -- output ---------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _triple(s: dict) -> str:
    return f"{_fmt(s['p50'])} / {_fmt(s['p95'])} / {_fmt(s['max'])}"


def render_markdown(res: dict) -> str:
    rows, target = res["rows"], res["target_p95_ms"]
    lines = [f"| cue | cues | p50 ms | p95 ms | max ms | p95 under {target:.0f} ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        s = r["latency_ms"]
        ok = "–" if s["p95"] is None else ("yes" if s["p95"] < target else "**no**")
        lines.append(f"| {r['cue']} (`{r['exercise']}`) | {s['n']} | {_fmt(s['p50'])} | "
                     f"{_fmt(s['p95'])} | {_fmt(s['max'])} | {ok} |")
    if any(r.get("speech_overlap") is not None for r in rows):
        lines += ["", "With spoken prompts playing through the same stream the whole time (`--speech`): "
                  + "; ".join(f"{r['cue']}: {100 * r['speech_overlap']:.0f} % of the cues started while a phrase "
                              f"was playing ({r['phrases_spoken']} phrases)" for r in rows) + "."]
    lines += ["", "Where the time goes (p50 / p95 / max, ms):", "",
              "| stage | " + " | ".join(r["cue"] for r in rows) + " |",
              "| --- |" + " --- |" * len(rows)]
    stages = [("pipeline", "frame arrival → cue call (`set_fault` / `play_target`): decode, fusion, "
                           "exercise, cue sink"),
              ("callback_wait", "cue call → audio callback starts writing the cue"),
              ("output", "callback → onset in the recording: stream and server buffers"),
              ("portaudio_predicted", "(PortAudio's own prediction: frame arrival → DAC time)")]
    for key, label in stages:
        lines.append(f"| {label} | " + " | ".join(_triple(r["stages_ms"][key]) for r in rows) + " |")
    lines.append("")
    for r in rows:
        lines.append(
            f"{r['cue'].capitalize()}: {r['cues']} cues, {r['onsets_found']} onsets found; "
            f"without a detectable onset {r['cues_without_onset']}, tone bursts without a cue "
            f"{r['bursts_without_cue']}, frame cross-check mismatches {r['frame_mismatches']}, "
            f"player underflows {r['underflows']}; frames handed over late by the scheduler p95 "
            f"{r['handover_late_ms']['p95']:.1f} ms, max {r['handover_late_ms']['max']:.1f} ms.  ")
    return "\n".join(lines).rstrip() + "\n"


def command_line(args) -> str:
    parts = ["hiplevel", "bench", "latency"]
    defaults = {"exercise": "both", "cues": 60, "threshold": THRESHOLD_DEFAULT_DEG, "drop": 8.0, "rep_s": 1.2,
                "jitter_ms": 10.0, "blocksize": 480, "latency": "low", "device": "pulse",
                "server": None, "monitor": None, "seed": 1}
    for name, default in defaults.items():
        v = getattr(args, name)
        if v != default:
            parts += ["--" + name.replace("_", "-"), str(v)]
    if getattr(args, "speech", False):
        parts.append("--speech")
    if args.write_docs:
        parts += ["--write-docs", str(args.write_docs)]
    return shlex.join(parts)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def generated_section(args, res: dict) -> str:
    """The body of the docs section (host.bench.docs adds the heading and a date stamp)."""
    import sounddevice as sd
    s = res["settings"]
    now = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    block_ms = 1000.0 * s["blocksize"] / s["samplerate_hz"]
    return "\n".join([
        f"Command: `{command_line(args)}` (run {now})  ",
        f"Machine: {_cpu()}, {os.cpu_count()} cores shared with other work (load average "
        f"{s['load_average'][0]:.2f} at the start); {sd.get_portaudio_version()[1]}.", "",
        f"Settings: simulated sensor at {s['rate_hz']} Hz, {s['samples_per_frame']} samples per frame "
        f"(one frame every {1000 * s['samples_per_frame'] / s['rate_hz']:.0f} ms), handed to a real "
        f"`StreamRunner` by an in-process transport on the sensor's schedule plus a random 0-"
        f"{s['jitter_ms']:g} ms link delay per frame; threshold {s['threshold_deg']:g}°, "
        f"{s['cues_scripted']} drops to {s['drop_deg']:g}° one every {s['rep_s']:g} s after "
        f"{s['calibration_s']:g} s of calibration, run once per exercise. Cue player: 48 kHz stereo "
        f"float32, blocksize {s['blocksize']} ({block_ms:.0f} ms), latency `{s['latency']}` "
        f"(PortAudio reported {_fmt(s['output_latency_ms'])} ms), device `{s['device']}` → "
        f"{s['server']}; recorded from `{s['monitor']}` with parec (5 ms fragments).", "",
        "Measured per cue on the host's monotonic clock, from the arrival of the frame whose "
        "processing switched the cue on (found from the `cue_on` event's device time) to the cue's "
        "first sample in the recording of the sink's output. Not included: the sensor's batching "
        "(up to 15 ms from the crossing sample to its frame being complete), the radio or serial "
        "link, and a sound card's own buffer (the null sink has none; PortAudio's prediction of "
        "the DAC time, shown below, includes the sink latency the server reports). Stage "
        "percentiles are taken separately, so they do not add up exactly to the total.", "",
        render_markdown(res).rstrip("\n"),
    ])


def run(args) -> int:
    from host.bench.docs import replace_section
    if args.link == "ble":
        if getattr(args, "speech", False):
            raise UserError("--speech measures the in-process session (--link memory); the BLE latency "
                            "bench has no spoken prompts")
        from host.bench import latency_ble
        res = latency_ble.measure_ble(args)
        if args.write_docs:
            try:
                replace_section(str(args.write_docs), latency_ble.SECTION_HEADING,
                                latency_ble.generated_section(args, res))
            except OSError as e:
                raise UserError(f"cannot write {args.write_docs}: {e.strerror}") from None
        print(json.dumps(res, indent=2) if args.json else latency_ble.render_markdown(res), end="\n")
        return 1 if res["rows"][0]["cues_without_onset"] else 0
    res = measure(args)
    if args.write_docs:
        try:
            heading = SPEECH_SECTION_HEADING if getattr(args, "speech", False) else SECTION_HEADING
            replace_section(str(args.write_docs), heading, generated_section(args, res))
        except OSError as e:
            raise UserError(f"cannot write {args.write_docs}: {e.strerror}") from None
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(render_markdown(res), end="")
    missing = sum(r["cues_without_onset"] for r in res["rows"])
    if missing:
        print(f"hiplevel bench latency: {missing} of {sum(r['cues'] for r in res['rows'])} cues had "
              "no detectable onset in the recording; the numbers above are incomplete.",
              file=sys.stderr)
        return 1
    return 0
