"""The simulator's firmware faults (`hiplevel sim --restart-at/--seq-jump-at/--stall-at/--clock-jump`)
on the firmware core: each one shows up in the frames the way the host's decoder expects it. In
process (the faults are the sim's; the links are tested in tests/links and tests/e2e)."""
import numpy as np

from firmware_sim.cli import FaultyDevice
from firmware_sim.device import SimDevice
from firmware_sim.motion import Scenario
from host.protocol.frames import (Command, DataFrame, FrameType, InfoFrame, SampleDecoder,
                                  decode_frame, encode_frame)

START = encode_frame(Command(FrameType.CMD_START))


def run(dev, until_s, step_s=0.05):
    """START, then the firmware's loop to until_s; every frame, and the host's decoder fed with them."""
    frames = dev.handle_command(START)
    t = 0.0
    while t < until_s:
        t += step_s
        frames += dev.frames_due(t)
    dec = SampleDecoder()
    batches = [b for b in (dec.feed(f, 0.0) for f in frames) if b is not None]
    return [decode_frame(f) for f in frames], dec, batches


def device(**faults):
    dev = SimDevice(Scenario(exercise="hip-dip", drops_deg=[6.0] * 2), seed=2, odr_error=0.01)
    dev.fw.info_every_us = 1_000_000  # serial: INFO once a second, as link_pty sets it
    return FaultyDevice(dev, **faults) if faults else dev


def data(frames):
    return [f for f in frames if isinstance(f, DataFrame)]


def test_a_reboot_starts_numbering_and_clock_over_and_the_decoder_keeps_every_sample():
    frames, dec, batches = run(device(restart_at_s=3.0), 5.0)
    d = data(frames)
    restart = next(i for i in range(1, len(d)) if d[i].seq < d[i - 1].seq)
    assert d[restart].seq == 0 and d[restart].t_device_us < 400_000  # up-time from ~0.3 s
    assert isinstance(frames[frames.index(d[restart]) - 1], InfoFrame)  # the new core says who it is
    assert dec.restarts == 1 and dec.lost_samples == 0 and not dec.errors
    assert sum(len(b.t_device_us) for b in batches) == sum(len(f.acc_raw) for f in d)


def test_a_sequence_jump_keeps_the_clock_running():
    frames, dec, batches = run(device(seq_jump_at_s=2.0), 4.0)
    d = data(frames)
    jump = next(i for i in range(1, len(d)) if d[i].seq != d[i - 1].seq + len(d[i - 1].acc_raw))
    assert d[jump].seq == d[jump - 1].seq + len(d[jump - 1].acc_raw) + 2 ** 31
    step_us = d[jump].t_device_us - d[jump - 1].t_device_us
    assert 0 < step_us <= len(d[jump - 1].acc_raw) * 1e6 / 208 * 1.1  # time goes on smoothly
    assert dec.restarts == 1 and dec.lost_samples == 0 and not dec.errors


def test_a_stalled_chip_sends_no_samples_but_info_goes_on():
    dev = device(stall_at_s=2.0)
    frames, dec, _ = run(dev, 6.0)
    last_data = max(i for i, f in enumerate(frames) if isinstance(f, DataFrame))
    infos_after = [f for f in frames[last_data:] if isinstance(f, InfoFrame)]
    assert len(infos_after) >= 3  # once a second, for the 4 s after the stall
    assert abs(dec.samples / 208 - 2.0) < 0.05
    assert not dev.finished  # a stalled sensor never says the set is over


def test_a_clock_jump_moves_the_stamps_and_nothing_else():
    dev = device()
    frames = dev.handle_command(START) + dev.frames_due(3.0)
    dev.jump_clock(-5.0)
    frames += dev.frames_due(4.0)
    d = data(map(decode_frame, frames))
    seqs = np.concatenate([f.seq + np.arange(len(f.acc_raw)) for f in d])
    assert np.array_equal(seqs, np.arange(len(seqs)))  # the numbering goes on
    steps = np.diff([f.t_device_us for f in d])
    assert np.sum(steps < 0) == 1 and -5.0e6 < steps.min() < -4.98e6
