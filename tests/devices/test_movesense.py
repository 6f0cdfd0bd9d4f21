"""The Movesense driver against byte vectors built by hand from the GATT SensorData Protocol
(Movesense GD-77 v1.0; movesense-device-lib samples/gatt_sensordata_app/GATTSensorDataClient.cpp)
and the IMU6 resource (movesense-api meas/imu.yaml: u32 ms timestamp, ArrayAcc m/s^2, ArrayGyro dps)."""
import struct

import numpy as np

from host.devices import kind_of_advertisement, kind_of_services, movesense as ms
from host.protocol.frames import SampleDecoder

G = 9.80665


def imu6(t_ms, acc, gyr, ref=99, kind=2):
    """[DATA=2, reference, u32 timestamp ms, n x (ax ay az), n x (gx gy gz)], float32 LE."""
    out = bytes([kind, ref]) + struct.pack("<I", t_ms % (1 << 32))
    for a in acc:
        out += struct.pack("<3f", *a)
    for g in gyr:
        out += struct.pack("<3f", *g)
    return out


def run(decoder, notifications):
    sd, batches = SampleDecoder(), []
    for data in notifications:
        for frame in decoder.feed(ms.NOTIFY_UUID, data, 0.0):
            b = sd.feed(frame, 0.0)
            if b is not None:
                batches.append(b)
    return sd, batches


def test_uuids_and_commands():
    assert ms.SERVICE_UUID == "34802252-7185-4d5d-b431-630e7050e8f0"
    assert ms.WRITE_UUID == "34800001-7185-4d5d-b431-630e7050e8f0"
    assert ms.NOTIFY_UUID == "34800002-7185-4d5d-b431-630e7050e8f0"
    assert ms.subscribe(ms.imu6_path(104)) == b"\x01\x63/Meas/IMU6/104"  # SUBSCRIBE, ref 99, path
    assert ms.subscribe(ms.imu6_path(208), ref=7) == b"\x01\x07/Meas/IMU6/208"
    assert ms.unsubscribe() == b"\x02\x63" and ms.hello() == b"\x00\x63"


def test_imu6_layout_is_all_acc_then_all_gyro():
    acc = [(0.0, G, 0.0), (G, 0.0, 0.0)]
    gyr = [(10.0, 0.0, 0.0), (0.0, -20.0, 5.0)]
    data = imu6(1234, acc, gyr)
    assert len(data) == 6 + 2 * 24
    sd, batches = run(ms.Decoder(104), [data])
    b = batches[0]
    assert sd.info.rate_hz == 104 and b.seq == 0
    np.testing.assert_allclose(b.acc_g, [[0, 1, 0], [1, 0, 0]], atol=1e-3)
    np.testing.assert_allclose(b.gyr_dps, gyr, atol=0.07)
    # first sample at the timestamp (ms -> us), the next one period later
    assert b.t_device_us[0] == 1_234_000 and b.t_device_us[1] == 1_234_000 + round(1e6 / 104)


def test_whole_millisecond_timestamps_at_208_hz_make_no_phantom_gaps_and_losses_count():
    n, rate = 4, 208
    notes = []
    for k in range(300):
        t_ms = int(1000 + k * n * 1000 / rate)  # whole ms, truncated as the sensor's clock does
        notes.append(imu6(t_ms, [(0, G, 0)] * n, [(0, 0, 0)] * n))
    sd, _ = run(ms.Decoder(rate), notes)
    assert sd.lost_samples == 0 and sd.samples == 1200
    sd, batches = run(ms.Decoder(rate), notes[:10] + notes[12:])  # two notifications lost
    assert sd.lost_samples == 2 * n and batches[10].seq == 12 * n


def test_timestamp_wraps_after_2_32_milliseconds():
    t0 = (1 << 32) - 20
    notes = [imu6(int(t0 + k * 4 * 1000 / 104), [(0, G, 0)] * 4, [(0, 0, 0)] * 4) for k in range(5)]
    assert struct.unpack_from("<I", notes[-1], 2)[0] < 200  # the raw counter did wrap
    sd, batches = run(ms.Decoder(104), notes)
    t = np.concatenate([b.t_device_us for b in batches])
    assert np.all(np.diff(t) > 0) and sd.lost_samples == 0


def test_data_part2_continues_a_long_value():
    data = imu6(500, [(0, G, 0)] * 8, [(1, 2, 3)] * 8)   # 198 bytes: longer than some links carry
    first, rest = data[:100], bytes([3, 99]) + data[100:]
    dec = ms.Decoder(104)
    sd, batches = run(dec, [first, rest])
    assert len(batches) == 1 and len(batches[0].acc_g) == 8 and not dec.errors
    np.testing.assert_allclose(batches[0].gyr_dps[-1], [1, 2, 3], atol=0.07)


def test_results_other_references_and_bad_values():
    dec = ms.Decoder(104)
    assert dec.feed(ms.NOTIFY_UUID, struct.pack("<BBH", 1, 99, 200), 0) == [] and dec.refused is None
    dec.feed(ms.NOTIFY_UUID, struct.pack("<BBH", 1, 99, 404), 0)
    assert dec.refused == 404
    assert dec.feed(ms.NOTIFY_UUID, imu6(1, [(0, G, 0)], [(0, 0, 0)], ref=5), 0) == []
    assert dec.errors["other_reference"] == 1
    dec.feed(ms.NOTIFY_UUID, b"\x02", 0)
    dec.feed(ms.NOTIFY_UUID, bytes([3, 99, 1, 2]), 0)
    dec.feed(ms.NOTIFY_UUID, bytes([9, 99]), 0)
    assert dec.errors["truncated"] == 1 and dec.errors["orphan_part"] == 1 and dec.errors["unknown_type"] == 1


def test_kind_from_advertisement_and_services():
    assert kind_of_advertisement("Movesense 210330000123", [], {}) == "movesense"
    assert kind_of_advertisement(None, [ms.SERVICE_UUID], {}) == "movesense"
    assert kind_of_services([ms.SERVICE_UUID, "0000180f-0000-1000-8000-00805f9b34fb"]) == "movesense"
    assert kind_of_services(["0000180f-0000-1000-8000-00805f9b34fb"]) is None
