"""Wire protocol v1: golden vectors pin the bytes; bad input is counted and skipped, never fatal."""
import random

import numpy as np
import pytest

from tests.support.sensor_frames import encode_frame  # DATA/INFO by the firmware core
from tests.support.golden_vectors import GOLDEN, load

from host.protocol.frames import (Command, DataFrame, FrameError, FrameType, InfoFrame, SampleDecoder,
                           SerialDeframer, cobs_decode, cobs_encode, decode_frame,
                           max_samples_per_frame, serial_wrap)

VECTORS = load()


@pytest.mark.parametrize("name,frame", VECTORS, ids=[v[0] for v in VECTORS])
def test_encoder_matches_golden_bytes(name, frame):
    assert encode_frame(frame) == (GOLDEN / f"{name}.bin").read_bytes()
    assert serial_wrap(encode_frame(frame)) == (GOLDEN / f"{name}.serial").read_bytes()


@pytest.mark.parametrize("name,frame", VECTORS, ids=[v[0] for v in VECTORS])
def test_decoder_reads_golden_bytes(name, frame):
    assert decode_frame((GOLDEN / f"{name}.bin").read_bytes()) == frame
    deframer = SerialDeframer()
    assert deframer.feed((GOLDEN / f"{name}.serial").read_bytes()) == [(GOLDEN / f"{name}.bin").read_bytes()]


def test_golden_layout_by_hand():
    # Independent of the encoder: the documented layout of the data frame, byte by byte.
    raw = (GOLDEN / "data_4.bin").read_bytes()
    assert raw[:2] == b"\x01\x01"
    assert int.from_bytes(raw[2:6], "little") == 123456
    assert int.from_bytes(raw[6:14], "little") == 9876543210
    assert raw[14] == 4 and len(raw) == 15 + 4 * 12
    assert int.from_bytes(raw[15:17], "little", signed=True) == 0
    assert int.from_bytes(raw[17:19], "little", signed=True) == 4096
    assert int.from_bytes(raw[21:23], "little", signed=True) == 3  # first gyro x


@pytest.mark.parametrize("data,reason", [
    (b"", "truncated"), (b"\x01", "truncated"), (b"\x02\x01" + bytes(40), "wrong_version"),
    (b"\x01\x7f", "unknown_type"), (b"\x01\x01" + bytes(10), "truncated"),
    (encode_frame(DataFrame(1, 2, np.zeros((2, 3), np.int16), np.zeros((2, 3), np.int16)))[:-1], "truncated"),
    (encode_frame(DataFrame(1, 2, np.zeros((2, 3), np.int16), np.zeros((2, 3), np.int16))) + b"x", "bad_length"),
    (b"\x01\x02" + bytes(5), "bad_length"), (b"\x01\x10\x00", "bad_length"),
])
def test_bad_frames_raise_frame_error_with_reason(data, reason):
    with pytest.raises(FrameError) as e:
        decode_frame(data)
    assert e.value.reason == reason


def test_random_bytes_never_crash_decoder_or_deframer():
    rng = random.Random(7)
    deframer = SerialDeframer()
    dec = SampleDecoder()
    for _ in range(3000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        try:
            decode_frame(blob)
        except FrameError:
            pass
        for frame in deframer.feed(blob):
            dec.feed(frame, 0.0)


def test_cobs_roundtrip_and_no_zero_bytes():
    rng = random.Random(3)
    for n in [0, 1, 253, 254, 255, 256, 600]:
        data = bytes(rng.choice([0, 0, 1, 255, rng.randrange(256)]) for _ in range(n))
        enc = cobs_encode(data)
        assert 0 not in enc
        assert cobs_decode(enc) == data


def test_serial_corruption_is_counted_and_stream_resyncs():
    frames = [encode_frame(DataFrame(i * 4, i * 20000, np.full((4, 3), i, np.int16),
                                     np.zeros((4, 3), np.int16))) for i in range(20)]
    stream = bytearray()
    for i, f in enumerate(frames):
        packet = bytearray(serial_wrap(f))
        if i == 5:
            packet[3] ^= 0x10          # flipped bit: CRC catches it
        if i == 9:
            packet = packet[:8] + b"\x00"  # truncated packet
        stream += packet
    deframer = SerialDeframer()
    out = []
    for k in range(0, len(stream), 7):  # arbitrary chunking
        out += deframer.feed(bytes(stream[k:k + 7]))
    assert out == [f for i, f in enumerate(frames) if i not in (5, 9)]
    assert sum(deframer.errors.values()) == 2


def test_sample_decoder_counts_gaps_and_ignores_data_before_info():
    info = InfoFrame(200, 8, 1000, 8 / 32768, 1000 / 32768, (0, 1, 0), 4)
    dec = SampleDecoder()
    mk = lambda seq: encode_frame(DataFrame(seq, 1000 + seq * 5000, np.full((4, 3), 4096, np.int16),
                                            np.zeros((4, 3), np.int16)))
    assert dec.feed(mk(0), 0.0) is None and dec.errors["no_info_yet"] == 1
    dec.feed(encode_frame(info), 0.0)
    b = dec.feed(mk(4), 0.0)
    np.testing.assert_allclose(b.acc_g[0], [1.0, 1.0, 1.0])
    assert list(b.t_device_us) == [21000, 26000, 31000, 36000]
    b = dec.feed(mk(16), 0.0)
    assert b.lost_before == 8 and dec.lost_samples == 8
    assert dec.feed(mk(16), 0.0) is None and dec.errors["stale"] == 1  # repeat
    b = dec.feed(mk(18), 0.0)  # overlaps by two: only the new two samples come out
    assert b.seq == 20 and len(b.acc_g) == 2
    dec.feed(encode_frame(Command(FrameType.CMD_STOP)), 0.0)
    assert dec.stopped


def test_sequence_numbers_wrap_without_a_false_gap():
    info = InfoFrame(200, 8, 1000, 8 / 32768, 1000 / 32768, (0, 1, 0), 4)
    dec = SampleDecoder()
    dec.feed(encode_frame(info), 0.0)
    z = np.zeros((4, 3), np.int16)
    dec.feed(encode_frame(DataFrame(2**32 - 4, 0, z, z)), 0.0)
    b = dec.feed(encode_frame(DataFrame(0, 20000, z, z)), 0.0)
    assert b is not None and b.lost_before == 0


def test_frames_fit_the_ble_mtu():
    assert max_samples_per_frame(20) == 0  # default ATT MTU 23: too small for a data frame
    n = max_samples_per_frame(244)  # MTU 247
    assert 15 + 12 * n <= 244 < 15 + 12 * (n + 1)
