"""Host cost per sample (decode + fusion + cue logic) and replay throughput.

Frames come from the simulator's encoder (a hip-dip set at 200 Hz, generated once up front), so the
numbers measure only the host. Reported as medians over repeats, with the ratio of each stage to
the whole measured in the same run (our machines are shared and noisy: ratios travel, absolute
times less so).
"""
from __future__ import annotations

import argparse
import statistics
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="sensor time to process per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--write-docs", metavar="PATH", help="also write the results as Markdown to PATH")


def _frames(seconds: float):
    from firmware_sim.device import SimDevice
    from firmware_sim.motion import Scenario
    reps = max(1, int((seconds - 4.0) / 3.5))
    sc = Scenario(drops_deg=[3.0, 8.0, 4.0, 9.0] * (reps // 4 + 1))
    sc.drops_deg = sc.drops_deg[:reps]
    dev = SimDevice(sc, seed=1)
    dev.streaming = True
    return [dev.info_frame()] + dev.frames_due(sc.duration_s + 1.0)


def measure(frames, stage: str) -> tuple[float, int]:
    """Seconds to push all frames through the pipeline up to `stage`; and the sample count."""
    from host.processing.exercise import ExerciseConfig
    from host.processing.pipeline import Pipeline, PipelineConfig
    from host.protocol.frames import SampleDecoder

    dec = SampleDecoder()
    pipe = Pipeline(PipelineConfig(exercise=ExerciseConfig()))
    t0 = time.perf_counter()
    for frame in frames:
        info = dec.info
        batch = dec.feed(frame, 0.0)
        if dec.info is not info:
            pipe.on_info(dec.info)
        if batch is not None and stage != "decode":
            if stage == "fusion":
                for i in range(len(batch.acc_g)):
                    pipe.estimator.update(batch.gyr_dps[i], batch.acc_g[i])
            else:
                pipe.process(batch)
    return time.perf_counter() - t0, dec.samples


def run(args) -> int:
    frames = _frames(args.seconds)
    results = {}
    for stage in ("decode", "fusion", "full"):
        times, n = [], 0
        for _ in range(args.repeats):
            dt, n = measure(frames, stage)
            times.append(dt)
        results[stage] = (statistics.median(times), n)
    full_s, n = results["full"]
    lines = [
        f"samples per repeat: {n} ({n / 200:.0f} s of sensor time at 200 Hz), {args.repeats} repeats, medians",
        "",
        "| stage | µs per sample | share of full pipeline |",
        "| --- | --- | --- |",
    ]
    for stage, label in (("decode", "decode only"), ("fusion", "decode + VQF fusion"),
                         ("full", "decode + fusion + calibration + angles + cue/reps")):
        s, _ = results[stage]
        lines.append(f"| {label} | {s / n * 1e6:.1f} | {s / full_s:.0%} |")
    lines += ["", f"replay throughput (full pipeline): {n / full_s:,.0f} samples/s "
              f"= {n / full_s / 200:,.0f}x real time at 200 Hz"]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        from host.bench.docs import replace_section
        cmd = f"hiplevel bench pipeline --seconds {args.seconds:g} --repeats {args.repeats}"
        replace_section(args.write_docs, "Host pipeline cost", f"`{cmd}`\n\n{text}")
    return 0
