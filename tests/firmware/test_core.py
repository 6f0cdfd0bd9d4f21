"""The firmware core (hardware/firmware/hiplevel_core.py) on its own, under CPython: framing against
the host's decoder and the golden vectors, batching to the MTU, the flush deadline, the resend
buffer, commands and rate changes, the FIFO parser on the simulated LSM6DS3TR-C, timestamps across
the 32-bit counter's wrap, and a chip that stops answering. The chip is firmware_sim.lsm6ds3 (a
register model: no board can run here); everything else is the real core."""
import binascii
import struct

import numpy as np
import pytest

from firmware_sim.device import SimDevice
from firmware_sim.firmware import core
from firmware_sim.lsm6ds3 import SimLSM6DS3TRC
from firmware_sim.motion import Scenario
from host.protocol import gatt
from host.protocol.frames import (Command, DataFrame, FrameType, InfoFrame, SampleDecoder,
                                  SerialDeframer, decode_frame, encode_frame,
                                  fault_message)
from tests.support.golden_vectors import GOLDEN, load

START = encode_frame(Command(FrameType.CMD_START))


def test_golden_vectors_match_the_cores_encoder():
    for name, frame in load():
        raw = (GOLDEN / f"{name}.bin").read_bytes()
        if isinstance(frame, DataFrame):
            body = np.concatenate([frame.acc_raw, frame.gyr_raw], axis=1).astype("<i2").tobytes()
            mine = core.encode_data(frame.seq, frame.t_device_us, body, len(frame.acc_raw))
        elif isinstance(frame, InfoFrame):
            assert frame.acc_range_g == core.ACC_RANGE_G and frame.gyr_range_dps == core.GYR_RANGE_DPS
            mine = struct.pack("<BBHHHffBBBB", 1, 2, frame.rate_hz, 8, 1000, frame.acc_g_per_lsb,
                               frame.gyr_dps_per_lsb, *frame.fw_version, frame.samples_per_frame)
            # the core's own INFO has the chip's sensitivities; its layout is the golden one
            info = core.encode_info(frame.rate_hz, frame.samples_per_frame, frame.fw_version)
            assert info[:8] == raw[:8] and info[16:] == raw[16:] and len(info) == len(raw)
        elif frame.type == FrameType.CMD_STOP:
            mine = core.encode_stop()  # the sensor's "set over"
            assert core.parse_command(raw) == (core.CMD_STOP, None)
        else:
            arg = frame.rate_hz if frame.type == FrameType.CMD_SET_RATE else frame.from_seq
            assert core.parse_command(raw) == (int(frame.type), arg)
            frames = core.SerialDeframer().feed((GOLDEN / f"{name}.serial").read_bytes())
            assert frames == [raw]
            continue
        assert mine == raw, name
        assert core.serial_wrap(mine) == (GOLDEN / f"{name}.serial").read_bytes(), name


def test_serial_framing_agrees_with_the_host():
    rng = np.random.default_rng(0)
    for n in [0, 1, 2, 253, 254, 255, 256, 600]:
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        data = data.replace(b"\x07", b"\x00")  # plenty of zeros
        assert core.crc16(data) == binascii.crc_hqx(data, 0xFFFF)
        assert core.cobs_decode(core.cobs_encode(data)) == data
        assert 0 not in core.cobs_encode(data)
        d = SerialDeframer(max_packet=4096)
        if n:
            assert d.feed(core.serial_wrap(data)) == [data]
    # damaged input: dropped and counted, never raised
    d = core.SerialDeframer()
    packet = bytearray(core.serial_wrap(START))
    packet[1] ^= 0x40
    assert d.feed(bytes(packet) + b"\x05\x00" + bytes(range(1, 100)) + b"\x00") == []
    assert d.dropped == 3
    assert d.feed(core.serial_wrap(START)) == [START]
    assert core.parse_command(b"\x02\x10") is None and core.parse_command(b"\x01\x12\x01") is None


def sim(**kw):
    kw.setdefault("odr_error", 0.0)
    return SimDevice(Scenario(exercise="hip-dip", drops_deg=[6.0] * 8), seed=1, **kw)


def data_frames(frames):
    return [f for f in map(decode_frame, frames) if isinstance(f, DataFrame)]


@pytest.mark.parametrize("mtu", [30, 66, 247])
def test_frames_are_fitted_to_the_mtu_and_flushed_within_one_interval(mtu):
    dev = sim(samples_per_frame=19)
    dev.fw.set_link(mtu - 3, interval_us=7500)
    dev.streaming = True
    frames = dev.frames_due(5.0)
    spf = gatt.samples_per_frame_for_mtu(mtu, 19)
    assert decode_frame(dev.info_frame()).samples_per_frame == spf
    assert all(len(f) <= mtu - 3 for f in frames)
    data = data_frames(frames)
    assert max(len(f.acc_raw) for f in data) <= spf
    # a frame leaves once its oldest sample is one connection interval old (plus one 2 ms loop)
    t_first = np.array([f.t_device_us for f in data], float)
    span = np.array([len(f.acc_raw) for f in data]) * 1e6 / 208
    assert np.all(span <= max(spf * 1e6 / 208, 7500 + 2000 + 1e6 / 208) + 1)
    seqs = np.concatenate([f.seq + np.arange(len(f.acc_raw)) for f in data])
    assert np.array_equal(seqs, np.arange(len(seqs)))  # contiguous, in order
    assert np.all(np.diff(t_first) > 0)


def test_resend_buffer_keeps_ten_seconds_and_resends_from_a_sequence_number():
    dev = sim()
    dev.streaming = True
    dev.frames_due(24.0)
    dev.fw.disconnected()
    assert not dev.streaming
    assert dev.frames_due(25.0) == []  # sampling goes on while no host streams
    newest = dev.fw.seq
    kept = data_frames(dev.resend_from(0))
    assert kept[0].seq > 0  # the oldest is gone
    n_kept = sum(len(f.acc_raw) for f in kept)
    assert n_kept / 208 >= 10.0
    from_seq = newest - 1000
    again = data_frames(dev.handle_command(
        encode_frame(Command(FrameType.CMD_RESEND_FROM, from_seq=from_seq))))
    assert again[0].seq == from_seq
    end = again[-1].seq + len(again[-1].acc_raw)
    # START after the resend first sends what was read in between, then INFO, then live data
    dev.frames_due(25.05)
    reply = dev.handle_command(START)
    kinds = [decode_frame(f) for f in reply]
    assert isinstance(kinds[-1], InfoFrame)
    between = [f for f in kinds if isinstance(f, DataFrame)]
    assert between and between[0].seq == end
    live = data_frames(dev.frames_due(25.2))
    assert live[0].seq == between[-1].seq + len(between[-1].acc_raw)


def test_commands_and_rate_changes():
    dev = sim()
    assert dev.handle_command(b"\x01\x99") == [] and dev.handle_command(b"") == []
    reply = dev.handle_command(START)
    assert decode_frame(reply[0]) == InfoFrame(208, 8, 1000, np.float32(0.000244),
                                               np.float32(0.035), core.FW_VERSION, 4)
    dev.frames_due(2.0)
    dec = SampleDecoder()
    reply = dev.handle_command(encode_frame(Command(FrameType.CMD_SET_RATE, rate_hz=400)))
    info = decode_frame(reply[-1])
    assert info.rate_hz == 416  # the chip's nearest rate
    frames = reply[-1:] + dev.frames_due(4.0)
    for f in frames:
        dec.feed(f, 0.0)
    assert dec.info.rate_hz == 416 and dec.lost_samples == 0
    data = data_frames(frames)
    t = np.array([f.t_device_us for f in data[-50:]], float)
    n = np.array([len(f.acc_raw) for f in data[-50:]])
    assert np.allclose(np.diff(t) / n[:-1], 1e6 / 416, rtol=0.01)
    assert abs(sum(len(f.acc_raw) for f in data) - 2.0 * 416) < 0.02 * 832
    dev.handle_command(encode_frame(Command(FrameType.CMD_STOP)))
    assert not dev.streaming and not dev.fw.sampling
    assert dev.frames_due(5.0) == []


def test_fifo_parser_reads_the_chips_words_at_its_sensitivities():
    acc = np.array([0.5, -1.0, 0.25])
    gyr = np.array([100.0, -35.0, 0.07])
    chip = SimLSM6DS3TRC(lambda t: (np.tile(acc, (len(t), 1)), np.tile(gyr, (len(t), 1))))
    imu = core.LSM6DS3TRC(chip)
    imu.begin(104)
    assert chip.regs[0x10] >> 4 == 0x4 and chip.regs[0x0A] == (0x4 << 3) | 0x6
    chip.advance(0.1)
    out = bytearray()
    k = imu.read(out)
    assert k == 10
    raw = np.frombuffer(bytes(out), "<i2").reshape(k, 6)
    assert np.array_equal(raw[0, :3], np.round(acc / 0.000244))
    assert np.array_equal(raw[0, 3:], np.round(gyr / 0.035))
    # a read that starts mid-pattern (half a sample already taken) realigns to the next sample
    chip.advance(0.2)
    two = bytearray(4)
    chip.read_into(0x3E, two)
    out = bytearray()
    assert imu.read(out) == 9
    assert np.array_equal(np.frombuffer(bytes(out), "<i2").reshape(9, 6)[:, 3:],
                          np.tile(np.round(gyr / 0.035), (9, 1)))
    # 4 KiB of FIFO: an overrun is noticed, and only whole samples come out
    chip.advance(5.0)
    out = bytearray()
    assert imu.read(out) == 2048 // 6 and imu.overruns == 1


def test_timestamps_cross_the_32_bit_counter_wrap():
    dev = sim(boot_us=(1 << 32) - 1_500_000, clock_ppm=0.0)  # wraps 1.5 s in
    dev.streaming = True
    data = data_frames(dev.frames_due(4.0))
    t = np.array([f.t_device_us for f in data])
    assert t[0] < 1 << 32 < t[-1]
    assert np.all(np.diff(t) > 0)
    expected_end = (1 << 32) - 1_500_000 + 4.0e6
    assert abs(t[-1] - expected_end) < 20_000


def test_a_chip_that_does_not_answer_is_a_fault_frame_not_a_hang():
    dev = sim(imu_fault_at_s=1.0, info_every_s=1.0)
    dev.streaming = True
    frames = dev.frames_due(3.5)
    faults = [f for f in frames if f[1] == core.FAULT]
    assert faults and faults[0] == bytes((1, core.FAULT, core.FAULT_IMU))
    dec = SampleDecoder()
    dec.feed(faults[0], 0.0)
    assert dec.fault == 1 and fault_message(dec.fault) == "the sensor's motion chip does not answer"
    assert dev.fw.fault == core.FAULT_IMU
    assert core.led_state(True, True, dev.fw.fault, 80) == "fault"
    dev.chip.answering = True
    dev.imu_fault_at_s = None
    late = dev.frames_due(6.0)  # retried once a second: data again
    assert dev.fw.fault == 0 and data_frames(late)


def test_battery_and_led_helpers():
    assert core.battery_percent(3.0) == 0 and core.battery_percent(4.3) == 100
    assert 40 <= core.battery_percent(3.77) <= 55
    assert core.led_state(False, False, 0, 80) == "advertising"
    assert core.led_state(True, True, 0, 10) == "low_battery"
    assert core.led_pattern("streaming", 123) == (0, 1, 0)
    assert core.led_pattern("advertising", 50) == (0, 0, 1)
    assert core.led_pattern("advertising", 500) == (0, 0, 0)
    adv = core.advertising_data(gatt.SERVICE_UUID, 87)
    assert adv == gatt.advertising_data(87)
    assert core.scan_response_data("hiplevel-1a2b") == gatt.scan_response_data("hiplevel-1a2b")
