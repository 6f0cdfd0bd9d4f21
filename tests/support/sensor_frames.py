"""Sensor frames for tests, made by the firmware core's encoder (the only encoder of DATA and INFO:
the host decodes them and encodes only commands)."""
import numpy as np

from firmware_sim.firmware import core
from host.protocol.frames import DataFrame, InfoFrame
import struct


def encode_sensor_frame(frame) -> bytes:
    if isinstance(frame, DataFrame):
        body = np.concatenate([frame.acc_raw, frame.gyr_raw], axis=1).astype("<i2").tobytes()
        return core.encode_data(frame.seq, frame.t_device_us, body, len(frame.acc_raw))
    if isinstance(frame, InfoFrame):
        if (frame.acc_g_per_lsb, frame.gyr_dps_per_lsb) == (np.float32(core.ACC_G_PER_LSB),
                                                           np.float32(core.GYR_DPS_PER_LSB)):
            return core.encode_info(frame.rate_hz, frame.samples_per_frame, frame.fw_version)
        # another sensor's scale factors (a golden vector, a made-up test sensor): the core's layout
        # with these values, which the core itself never sends
        return struct.pack("<BBHHHffBBBB", core.PROTOCOL_VERSION, core.INFO, frame.rate_hz,
                           frame.acc_range_g, frame.gyr_range_dps, frame.acc_g_per_lsb,
                           frame.gyr_dps_per_lsb, *frame.fw_version, frame.samples_per_frame)
    raise TypeError(f"not a sensor frame: {frame!r}")


def encode_frame(frame) -> bytes:
    """Any v1 frame as bytes, from whoever sends it: DATA/INFO by the firmware core, commands by the
    host (host.protocol.frames.encode_command)."""
    from host.protocol.frames import Command, encode_command
    if isinstance(frame, Command):
        return encode_command(frame)
    return encode_sensor_frame(frame)
