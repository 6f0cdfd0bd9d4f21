"""Property-based fuzzing of the whole receive path with what a broken sensor could send.

Hypothesis builds a sensor's true stream (a rate, frames of consecutive samples on a drifting device
clock), then damages it: frames dropped, duplicated, swapped, truncated, junk packets in between,
the sensor rebooting (numbering and clock start over) or its numbering jumping by 2^31, INFO frames
with absurd rates and scales, DATA with absurd timestamps, sequence numbers and counts. Everything
goes through the real serial framing and deframer (or straight in, as over BLE), the real
SampleDecoder and the real Pipeline (`feed_frame`: estimator, calibration, exercise).

Asserted: no exception escapes; the decoder and the pipeline agree on samples and lost samples; within
each segment between restarts, every batch starts where the last one ended plus the samples it says
were lost (samples + lost == what the sequence numbers say); and for damage that leaves the frames'
contents true, every sample that comes out is a true one, none twice, and exactly the true samples
that never came out are counted as lost.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.processing.pipeline import Pipeline, PipelineConfig
from host.protocol.frames import SEQ_MODULO, DataFrame, InfoFrame, SampleDecoder, SerialDeframer, serial_wrap
from tests.support.sensor_frames import encode_frame  # made-up sensors' frames, by the core's encoder

RATES_HZ = (50, 100, 200, 400)
ACC_G_PER_LSB, GYR_DPS_PER_LSB = 8 / 32768, 1000 / 32768
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def info(rate_hz: int, acc=ACC_G_PER_LSB, gyr=GYR_DPS_PER_LSB, spf: int = 4) -> bytes:
    return encode_frame(InfoFrame(rate_hz, 8, 1000, acc, gyr, (0, 1, 0), spf))


def data(seq: int, t_us: int, n: int, rng: np.random.Generator, absurd_values: bool = False) -> bytes:
    if absurd_values:
        acc = rng.integers(-32768, 32768, (n, 3)).astype(np.int16)
        gyr = rng.integers(-32768, 32768, (n, 3)).astype(np.int16)
    else:  # standing, about 1 g on y, a little noise
        acc = (np.array([0, 4096, 0]) + rng.integers(-40, 40, (n, 3))).astype(np.int16)
        gyr = rng.integers(-30, 30, (n, 3)).astype(np.int16)
    return encode_frame(DataFrame(seq % SEQ_MODULO, t_us, acc, gyr))


BAD_INFOS = [info(0), info(65535), info(2001), info(200, acc=float("inf")), info(200, acc=float("nan")),
             info(200, gyr=-1.0), info(200, acc=1e-9), info(200, gyr=1e9), info(200, spf=0)]


@st.composite
def true_stream(draw):
    """(rate, frames as (seq, t_us, n, segment)): what the sensor really sent, restarts included."""
    rate = draw(st.sampled_from(RATES_HZ))
    period_us = 1e6 / rate
    ppm = draw(st.floats(-1000, 1000))
    seq = draw(st.integers(0, SEQ_MODULO - 1))
    t0_us = draw(st.integers(10**11, 2**40))
    frames, k, segment, jumped = [], 0, 0, False
    # Restarts are kept apart in numbering and time, so that no later segment lines up with an
    # earlier one by chance (two jumps of 2^31 would: such a stream is one segment with one bad frame).
    for _ in range(draw(st.integers(3, 40))):
        restart = draw(st.sampled_from(["none"] * 12 + ["reboot", "seq_jump"])) if segment < 4 else "none"
        if restart == "reboot" and frames:  # numbering ahead (up to 2^26), clock back by 1 s .. 3 h
            seq = (seq + draw(st.integers(1, 2**26))) % SEQ_MODULO
            t0_us = max(0, int(t0_us + k * period_us * (1 + ppm * 1e-6)) - draw(st.integers(10**6, 10**10)))
            k, segment = 0, segment + 1
        elif restart == "seq_jump" and frames and not jumped:  # numbering +2^31, the clock runs on
            jumped = True
            seq = (seq + SEQ_MODULO // 2) % SEQ_MODULO
            t0_us, k, segment = int(t0_us + k * period_us * (1 + ppm * 1e-6)), 0, segment + 1
        n = draw(st.integers(1, 8))
        frames.append((seq, int(t0_us + round(k * period_us * (1 + ppm * 1e-6))), n, segment))
        seq, k = (seq + n) % SEQ_MODULO, k + n
    return rate, frames


def damage(draw, frames: list) -> list:
    """The frames as a bad link delivers them: dropped, duplicated, swapped with the next one."""
    out = []
    for f in frames:
        what = draw(st.sampled_from(["keep"] * 8 + ["drop", "dup", "swap"]))
        if what == "drop":
            continue
        out.append(f)
        if what == "dup":
            out.append(f)
        if what == "swap" and len(out) >= 2:
            out[-1], out[-2] = out[-2], out[-1]
    return out


def run_through(byte_frames: list[bytes], serial: bool, junk: list[bytes], chunk: int):
    """Frames through (optionally) the serial wrapping and deframer, then decoder + pipeline. Returns
    the batches, the decoder, the pipeline and the deframer."""
    dec, pipe, deframer = SampleDecoder(), Pipeline(PipelineConfig()), SerialDeframer()
    events = []
    pipe.emit = events.append
    batches = []
    if serial:
        stream = bytearray(b"\x00")  # a host that opened the port mid-stream resyncs at the first 0
        for i, f in enumerate(byte_frames):
            stream += serial_wrap(f)
            if junk and i % 3 == 0:
                stream += junk[i % len(junk)] + b"\x00"
        frames = []
        for k in range(0, len(stream), chunk):
            frames += deframer.feed(bytes(stream[k:k + chunk]))
    else:
        frames = byte_frames
    for f in frames:
        b = pipe.feed_frame(dec, f, 0.0)
        if b is not None:
            batches.append(b)
    return batches, dec, pipe, deframer, events


def check_counts(batches, dec, pipe, events):
    assert dec.samples == pipe.samples == sum(len(b.t_device_us) for b in batches)
    assert dec.lost_samples == pipe.lost_samples == sum(b.lost_before for b in batches)
    # each start-over the decoder found is said once: a reboot (new numbering) as sensor_restarted,
    # a clock that jumped while the numbering went on as a clock_jump carrying expected_seq
    assert len([e for e in events if e["event"] == "sensor_restarted"
                or (e["event"] == "clock_jump" and "expected_seq" in e)]) == dec.restarts
    end = None
    for b in batches:
        n = len(b.t_device_us)
        assert n == len(b.acc_g) == len(b.gyr_dps) and n > 0
        assert np.all(np.isfinite(b.acc_g)) and np.all(np.isfinite(b.gyr_dps))
        assert np.all(np.diff(b.t_device_us) > 0)
        if end is not None and b.restarted is None:
            assert b.seq == (end + b.lost_before) % SEQ_MODULO  # samples + lost == sequence numbers
        if b.restarted is not None:
            assert b.lost_before == 0
        end = (b.seq + n) % SEQ_MODULO
    assert np.isfinite(pipe.t_s)


@FUZZ
@given(st.data())
def test_damaged_link_loses_nothing_it_does_not_count(d):
    rate, truth = d.draw(true_stream())
    rng = np.random.default_rng(d.draw(st.integers(0, 2**32 - 1)))
    delivered = damage(d.draw, truth)
    byte_frames = [info(rate)]
    truncated = 0
    for seq, t_us, n, _seg in delivered:
        extra = d.draw(st.sampled_from(["none"] * 10 + ["bad_info", "info", "truncated"]))
        if extra == "bad_info":
            byte_frames.append(d.draw(st.sampled_from(BAD_INFOS)))
        elif extra == "info":
            byte_frames.append(info(rate))
        elif extra == "truncated":  # a frame the firmware cut short (its CRC is right)
            f = data(seq, t_us, n, rng)
            byte_frames.append(f[:d.draw(st.integers(1, len(f) - 1))])  # (0 bytes: the deframer's)
            truncated += 1
            continue
        byte_frames.append(data(seq, t_us, n, rng))
    serial = d.draw(st.booleans())
    junk = d.draw(st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\x00", b"\x01")),
                           max_size=3))
    batches, dec, pipe, deframer, events = run_through(byte_frames, serial, junk,
                                                       d.draw(st.integers(1, 300)))
    check_counts(batches, dec, pipe, events)
    assert dec.errors["truncated"] == truncated and dec.errors["bad_info"] == sum(
        1 for f in byte_frames if f in BAD_INFOS)

    # Every sample out is a true one, once; per segment, the true samples between the first and the
    # last delivered that never came out are exactly the lost ones.
    true_samples = {}
    for seq, t_us, n, seg in truth:
        for i in range(n):
            true_samples[((seq + i) % SEQ_MODULO, t_us + round(i * 1e6 / rate))] = seg
    seen, by_segment = set(), {}
    segment = 0
    for b in batches:
        if b.restarted is not None:
            segment += 1
        keys = [((b.seq + i) % SEQ_MODULO, int(t)) for i, t in enumerate(b.t_device_us)]
        for key in keys:
            assert key in true_samples, "a sample that the sensor never sent"
            assert key not in seen, "a sample delivered twice"
            seen.add(key)
        by_segment.setdefault(segment, []).append((keys, b.lost_before))
    for parts in by_segment.values():
        keys = [k for ks, _ in parts for k in ks]
        lost = sum(lost for _, lost in parts[1:])  # the first batch's gap reaches before the segment
        segs = {true_samples[k] for k in keys}
        assert len(segs) == 1, "a restart the decoder did not see"
        seg = segs.pop()
        order = [k for k, s in true_samples.items() if s == seg]  # in the order the sensor sent them
        first, last = order.index(keys[0]), order.index(keys[-1])
        assert lost == (last - first + 1) - len(keys)


@FUZZ
@given(st.data())
def test_absurd_fields_never_break_the_pipeline(d):
    rate, truth = d.draw(true_stream())
    rng = np.random.default_rng(d.draw(st.integers(0, 2**32 - 1)))
    byte_frames = [info(rate)]
    for seq, t_us, n, _seg in damage(d.draw, truth):
        what = d.draw(st.sampled_from(["keep"] * 6 + ["t", "seq", "both", "values", "info", "junk_frame"]))
        if what in ("t", "both"):
            t_us = d.draw(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**63, 2**64 - 1,
                                                                                2**53, 2**53 + 1])))
        if what in ("seq", "both"):
            seq = d.draw(st.integers(0, SEQ_MODULO - 1))
        if what == "info":  # any INFO at all, valid or not, also a valid one at another rate
            byte_frames.append(encode_frame(InfoFrame(
                d.draw(st.integers(0, 65535)), d.draw(st.integers(0, 65535)), d.draw(st.integers(0, 65535)),
                d.draw(st.floats(width=32)), d.draw(st.floats(width=32)), (1, 2, 3), d.draw(st.integers(0, 255)))))
        if what == "junk_frame":  # a header that says DATA, then anything
            byte_frames.append(b"\x01\x01" + d.draw(st.binary(max_size=60)))
        byte_frames.append(data(seq, t_us, n, rng, absurd_values=what == "values"))
    batches, dec, pipe, deframer, events = run_through(byte_frames, d.draw(st.booleans()), [],
                                                       d.draw(st.integers(1, 300)))
    check_counts(batches, dec, pipe, events)
