"""Motion-to-sound latency over the simulated BLE link (`hiplevel bench latency --link ble`).

From the simulated truth crossing the threshold (the true time of the first sample of a drop past
it) to the cue's onset in a recording of the sound server's output, through everything between:
the firmware core's FIFO reads and batching (hardware/firmware/hiplevel_core.py, run by
`hiplevel sim --link ble`), the bumble stacks and the virtual radio, the host's BLE transport,
decoder, fusion and exercise logic, the cue player and the sound server.

How a run goes: the sensor runs as its own process with `--truth`; its truth CSV gives each
sample's true time on this machine's time.monotonic() (`t_mono_s`: one clock for every process), so
the crossing and the recording's onsets share one clock. A real `StreamRunner` (BleTransport ->
decoder -> pipeline -> AudioCueSink -> CuePlayer) streams the set with the `keep-level` exercise:
the fault tone sounds while the free (right) side is dropped past `--threshold`. A frame tap (the
session's recorder hook) notes each frame's arrival. Per rep: crossing (truth) -> arrival of the
frame carrying that sample -> cue call -> audio callback -> recorded onset.

Out: the same shape of result as host.bench.latency (p50/p95/max, stages, counts), one row.
"""
from __future__ import annotations

import asyncio
import csv
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from host.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SECTION_HEADING = "Motion-to-sound latency over BLE"
MAX_LATENCY_S = 0.5
TAIL_S = 0.4


class FrameTap:
    """The session's recorder hook: when each data frame (its sequence range) arrived."""

    def __init__(self):
        self.arrivals: list[tuple[float, int, int]] = []  # (t_host_s, first seq, n)

    def frame(self, t_host_s: float, frame: bytes, late: bool = False) -> None:
        if len(frame) >= 15 and frame[1] == 0x01 and not late:
            seq, _, n = struct.unpack_from("<IQB", frame, 2)
            self.arrivals.append((t_host_s, seq, n))

    def event(self, event: dict) -> None:
        pass

    def arrival_of(self, seq: int) -> float | None:
        for t, first, n in self.arrivals:
            if first <= seq < first + n:
                return t
        return None


def truth_crossings(path: Path, threshold_deg: float) -> list[tuple[int, int, float]]:
    """(rep, seq, t_mono_s) of the first sample of each rep whose right side drops past the
    threshold (stance left: the free side is the right; drop_right = +obliquity)."""
    out, seen = [], set()
    with open(path) as f:
        for row in csv.DictReader(f):
            rep = int(row["rep"])
            if rep < 0 or rep in seen or not row["t_mono_s"]:
                continue
            if float(row["obliquity_deg"]) >= threshold_deg:
                seen.add(rep)
                out.append((rep, int(row["seq"]), float(row["t_mono_s"])))
    return out


def _stats(values):
    from host.bench.latency import stats_ms
    return stats_ms(values)


def measure_ble(args) -> dict:
    from host.bench.latency import CueTap, _sound_server
    from host.links.ble.transport import BleTransport
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import PipelineConfig
    from host.bench import audio_capture
    from host.session.runner import StreamRunner
    from host.sinks.audio import AudioCueSink, AudioUnavailable, CuePlayer
    from host.sinks.sound_server import PulseServerError

    if args.drop < args.threshold + 1.0:
        raise UserError(f"the drop ({args.drop:g}°) must pass the threshold ({args.threshold:g}°) by "
                        "at least 1° so that every drop clearly crosses it")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hiplevel-latency-") as tmp:
        truth = Path(tmp) / "truth.csv"
        sim_log = open(Path(tmp) / "sim.log", "w")
        sim = subprocess.Popen(
            [sys.executable, "-m", "host.cli", "sim", "--link", "ble", "--exercise", "hip-dip",
             "--stance", "left", "--drops", f"{args.drop:g}", "--reps", str(args.cues),
             "--rep-seconds", f"{args.rep_s:g}", "--seed", str(args.seed), "--truth", str(truth)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=sim_log, text=True)  # a full pipe would stall it
        server = player = None
        try:
            first = sim.stdout.readline().split()
            if len(first) != 3 or first[0] != "ble":
                sim.wait(5)
                sim_log.close()
                raise UserError("the simulated sensor did not start: "
                                + ((Path(tmp) / "sim.log").read_text().strip() or "no message"))
            name, hci = first[1], first[2]
            server, address, monitor = _sound_server(args)
            player = CuePlayer(device=args.device, blocksize=args.blocksize, latency=args.latency)
            try:
                player.start()
            except AudioUnavailable as e:
                raise UserError(str(e)) from None
            cfg = PipelineConfig(exercise=ExerciseConfig(
                exercise="keep-level", stance="left", threshold_left_deg=args.threshold,
                threshold_right_deg=args.threshold))
            frames, onsets = FrameTap(), CueTap(None, player)
            session = StreamRunner(BleTransport(name, hci=hci), cfg, events=onsets,
                              cue=AudioCueSink(player), recorder=frames)
            print(f"hiplevel bench latency --link ble: {args.cues} drops through the simulated "
                  "sensor's firmware and the virtual radio, in real time…", file=sys.stderr, flush=True)
            try:
                recorder = audio_capture.SinkCapture(address, monitor).start()
            except PulseServerError as e:
                raise UserError(str(e)) from None
            try:
                summary = asyncio.run(session.run())
                time.sleep(TAIL_S)
                onsets.note_onset()
            finally:
                recording = recorder.stop()
            if not summary.ok:
                raise UserError(f"the session did not finish normally: {summary.reason}")
            output_latency_s = player.output_latency_s
        finally:
            if player is not None:
                player.close()
            if server is not None:
                server.stop()
            try:
                sim.wait(15)  # it ends by itself a second after the set; then the truth is complete
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(5)
            sim_log.close()
        crossings = truth_crossings(truth, args.threshold)
    found = audio_capture.bursts(recording.samples, recording.samplerate)
    onset_hosts = [recording.host_time_of_frame(b.start) for b in found]
    rows, used = [], set()
    for k, (rep, seq, t_cross) in enumerate(crossings):
        nxt = crossings[k + 1][2] if k + 1 < len(crossings) else math.inf
        r = {"rep": rep, "seq": seq, "crossing_s": t_cross, "arrival_s": frames.arrival_of(seq),
             "requested_s": None, "callback_s": None, "onset_s": None}
        for o in onsets.onsets:
            if o.kind == "fault" and t_cross <= o.requested_s < nxt:
                r["requested_s"], r["callback_s"] = o.requested_s, o.callback_s
                break
        for j, t in enumerate(onset_hosts):
            if j not in used and t_cross <= t < min(nxt, t_cross + MAX_LATENCY_S):
                r["onset_s"] = t
                used.add(j)
                break
        rows.append(r)

    def ms(a, b):
        return [None if r[a] is None or r[b] is None else 1000.0 * (r[b] - r[a]) for r in rows]

    row = {
        "exercise": "keep-level", "cue": "fault tone (BLE)", "cues": len(rows),
        "onsets_found": sum(1 for r in rows if r["onset_s"] is not None),
        "cues_without_onset": sum(1 for r in rows if r["onset_s"] is None),
        "bursts_without_cue": len(onset_hosts) - len(used),
        "cue_on_events": len(onsets.cue_ons),
        "latency_ms": _stats(ms("crossing_s", "onset_s")),
        "stages_ms": {
            "sensor_link": _stats(ms("crossing_s", "arrival_s")),
            "pipeline": _stats(ms("arrival_s", "requested_s")),
            "callback_wait": _stats(ms("requested_s", "callback_s")),
            "output": _stats(ms("callback_s", "onset_s")),
        },
        "per_cue": rows,
    }
    return {"bench": "latency", "link": "ble",
            "settings": {"cues_scripted": args.cues, "threshold_deg": args.threshold,
                         "drop_deg": args.drop, "rep_s": args.rep_s, "seed": args.seed,
                         "blocksize": args.blocksize, "latency": args.latency,
                         "device": args.device,
                         "output_latency_ms": None if output_latency_s is None
                         else round(1000 * output_latency_s, 2),
                         "load_average": [round(x, 2) for x in load_before]},
            "target_p95_ms": 50.0, "rows": [row]}


STAGES = [("sensor_link", "truth crossing → frame carrying that sample arrives at the host: the "
                          "chip's sample period, the firmware's 2 ms FIFO poll and batching "
                          "(flush after 7.5 ms), bumble and the virtual radio, the host's transport"),
          ("pipeline", "arrival → cue call: decode, fusion, exercise logic (and any later frame "
                       "the estimate needed to pass the threshold)"),
          ("callback_wait", "cue call → audio callback starts writing the cue"),
          ("output", "callback → onset in the recording: stream and server buffers")]


def render_markdown(res: dict) -> str:
    from host.bench.latency import _fmt, _triple
    row, target = res["rows"][0], res["target_p95_ms"]
    s = row["latency_ms"]
    ok = "–" if s["p95"] is None else ("yes" if s["p95"] < target else "**no**")
    lines = [f"| from the truth crossing to the recorded onset | cues | p50 ms | p95 ms | max ms | "
             f"p95 under {target:.0f} ms |", "| --- | --- | --- | --- | --- | --- |",
             f"| {row['cue']} | {s['n']} | {_fmt(s['p50'])} | {_fmt(s['p95'])} | {_fmt(s['max'])} "
             f"| {ok} |", "", "| stage (p50 / p95 / max, ms) | |", "| --- | --- |"]
    for key, label in STAGES:
        lines.append(f"| {label} | {_triple(row['stages_ms'][key])} |")
    lines += ["", f"{row['cues']} drops, {row['onsets_found']} onsets found, without a detectable "
                  f"onset {row['cues_without_onset']}, tone bursts without a crossing "
                  f"{row['bursts_without_cue']}."]
    return "\n".join(lines) + "\n"


def generated_section(args, res: dict) -> str:
    s = res["settings"]
    return "\n".join([
        f"Command: `hiplevel bench latency --link ble --cues {s['cues_scripted']}"
        f"{' --write-docs ' + str(args.write_docs) if args.write_docs else ''}`  ",
        f"Machine: {os.cpu_count()} cores shared with other work (load average "
        f"{s['load_average'][0]:.2f} at the start).", "",
        f"The simulated sensor (`hiplevel sim --link ble`: the firmware core on a simulated "
        f"LSM6DS3TR-C at 208 Hz) streams {s['cues_scripted']} drops to {s['drop_deg']:g}° one every "
        f"{s['rep_s']:g} s over the virtual radio to a real session (`keep-level`, threshold "
        f"{s['threshold_deg']:g}°) whose fault tone is recorded from the private sound server. "
        "Start: the true time of the first sample past the threshold (the simulator's truth, on "
        "the machine's monotonic clock); end: the tone's first sample in the recording.", "",
        render_markdown(res).rstrip("\n"), "",
        "What a real radio adds: the virtual radio delivers a notification as soon as it is sent; "
        "a real link sends only at connection events, so a frame waits up to one connection "
        "interval (on average half): +0-7.5 ms at the 7.5 ms interval the firmware asks for, "
        "+0-15 ms at the 15 ms most phones grant, +0-30 ms at 30 ms; a lost packet is resent at "
        "the next event (one more interval). The firmware's flush deadline follows the granted "
        "interval, so batching adds no more than that interval either.",
    ])
