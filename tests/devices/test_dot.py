"""The Movella DOT driver against byte vectors built by hand from the "Movella DOT BLE Service
Specification", document XD0506P, revision C (July 2023): sections named per test."""
import struct

import numpy as np
import pytest

from host.devices import dot, kind_of_advertisement, kind_of_services
from host.protocol.frames import FrameType, SampleDecoder, decode_frame, Command

G = 9.80665
PERIOD_US = 1e6 / 60


def rate_quantities(t_us, acc_ms2, gyr_dps, pad=True):
    """Table 15 (medium payload, mode 21) + Table 17: u32 timestamp us, acc m/s^2, gyr dps, float32 LE."""
    raw = struct.pack("<I", t_us % (1 << 32)) + struct.pack("<3f", *acc_ms2) + struct.pack("<3f", *gyr_dps)
    assert len(raw) == 28
    return raw + b"\x00" * 12 if pad else raw  # 40-byte characteristic, trailing unused bytes 0x00


def run(decoder, notifications, t_host=0.0):
    """Feed notifications; decode what comes out with the session's own v1 decoder."""
    sd = SampleDecoder()
    batches = []
    for data in notifications:
        for frame in decoder.feed(dot.MEDIUM_PAYLOAD_UUID, data, t_host):
            b = sd.feed(frame, t_host)
            if b is not None:
                batches.append(b)
    return sd, batches


def test_uuids_from_the_base_uuid_section_1_1():
    assert dot.CONTROL_UUID == "15172001-4947-11e9-8646-d663bd873d93"
    assert dot.MEDIUM_PAYLOAD_UUID == "15172003-4947-11e9-8646-d663bd873d93"
    assert dot.DEVICE_CONTROL_UUID == "15171002-4947-11e9-8646-d663bd873d93"
    assert dot.BATTERY_UUID == "15173001-4947-11e9-8646-d663bd873d93"


def test_commands_table_13_and_table_7():
    assert dot.control(dot.ACTION_START) == bytes([1, 1, 21])   # measurement, start, rate quantities
    assert dot.control(dot.ACTION_STOP) == bytes([1, 0, 21])
    expected = bytes([0x10]) + bytes(7) + bytes(16) + struct.pack("<H", 60) + bytes(1) + bytes(5)
    assert dot.set_output_rate(60) == expected and len(expected) == 32
    assert dot.parse_device_control(expected)["output_rate_hz"] == 60
    with pytest.raises(ValueError, match="60"):
        dot.set_output_rate(100)


def test_one_notification_is_one_sample_in_g_and_dps():
    dec = dot.Decoder(60)
    sd, batches = run(dec, [rate_quantities(5_000_000, (0.0, G, 0.0), (1.5, -2.0, 30.0))])
    assert sd.info.rate_hz == 60 and len(batches) == 1
    b = batches[0]
    assert b.seq == 0 and b.t_device_us.tolist() == [5_000_000]
    np.testing.assert_allclose(b.acc_g, [[0.0, 1.0, 0.0]], atol=1e-3)       # 1 g up at rest
    np.testing.assert_allclose(b.gyr_dps, [[1.5, -2.0, 30.0]], atol=0.07)   # deg/s unchanged
    # the unpadded 28-byte form is read the same
    sd2, b2 = run(dot.Decoder(60), [rate_quantities(5_000_000, (0.0, G, 0.0), (1.5, -2.0, 30.0), pad=False)])
    np.testing.assert_array_equal(b2[0].acc_g, b.acc_g)


def test_timestamp_wraps_after_2_32_microseconds():
    t0 = (1 << 32) - int(2.5 * PERIOD_US)
    notes = [rate_quantities(int(round(t0 + i * PERIOD_US)), (0, G, 0), (0, 0, 0)) for i in range(6)]
    assert struct.unpack_from("<I", notes[-1])[0] < 100_000  # the raw counter did wrap
    sd, batches = run(dot.Decoder(60), notes)
    t = np.concatenate([b.t_device_us for b in batches])
    assert np.all(np.abs(np.diff(t) - PERIOD_US) < 1)  # device time keeps increasing
    assert sd.lost_samples == 0 and [b.seq for b in batches] == list(range(6))


def test_lost_notifications_are_counted_as_lost_samples():
    notes = [rate_quantities(int(round(1e6 + i * PERIOD_US)), (0, G, 0), (0, 0, 0)) for i in range(20)]
    kept = notes[:5] + notes[8:]  # three notifications lost on the air
    sd, batches = run(dot.Decoder(60), kept)
    assert sd.lost_samples == 3 and batches[5].lost_before == 3 and batches[5].seq == 8


def test_a_slightly_fast_clock_makes_no_phantom_gaps():
    # the sensor's clock 2 % off the nominal 60 Hz for 2000 samples: still no sample counted lost
    notes = [rate_quantities(int(round(1e6 + i * PERIOD_US * 1.02)), (0, G, 0), (0, 0, 0))
             for i in range(2000)]
    sd, _ = run(dot.Decoder(60), notes)
    assert sd.lost_samples == 0 and sd.samples == 2000


def test_bad_notifications_are_counted_and_skipped():
    dec = dot.Decoder(60)
    good = rate_quantities(1_000_000, (0, G, 0), (0, 0, 0))
    sd, batches = run(dec, [good[:20], good + b"\x00", good])
    assert dec.errors["bad_length"] == 2 and len(batches) == 1
    nan = struct.pack("<I", 1_016_667) + struct.pack("<3f", float("nan"), 0, 0) + bytes(24)
    assert dec.feed(dot.MEDIUM_PAYLOAD_UUID, nan, 0.0) == [] and dec.errors["not_a_number"] == 1


def test_power_off_report_ends_the_stream_table_9():
    dec = dot.Decoder(60)
    frames = dec.feed(dot.DEVICE_REPORT_UUID, bytes([1]) + bytes(35), 0.0)
    assert [decode_frame(f) for f in frames] == [Command(FrameType.CMD_STOP)]
    assert dec.feed(dot.DEVICE_REPORT_UUID, bytes([4]) + bytes(35), 0.0) == []  # power saving: no


def test_kind_from_advertisement_section_1_2_and_services():
    assert kind_of_advertisement("Movella DOT", [], {0x0886: b"\x01"}) == "dot"
    assert kind_of_advertisement(None, [], {2182: b""}) == "dot"
    assert kind_of_advertisement("Xsens DOT", [], {}) == "dot"
    assert kind_of_advertisement("Someone else", [], {0x004C: b""}) is None
    assert kind_of_services([dot.CONFIG_SERVICE_UUID, dot.MEASUREMENT_SERVICE_UUID]) == "dot"
