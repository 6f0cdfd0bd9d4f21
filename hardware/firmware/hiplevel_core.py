"""The hiplevel belt sensor's firmware core: everything the firmware decides, with no board imports.

The same file runs on the board (copied to CIRCUITPY next to code.py, which is the board glue) and,
under CPython, inside the simulator (`hiplevel sim`, firmware_sim/), so every end-to-end test runs
this logic. It uses only what CircuitPython offers (struct, no numpy/dataclasses/typing/f-strings
with nested specs); tests/firmware/test_board_glue.py checks that.

How data enters and leaves:
- In: register reads and writes of the LSM6DS3TR-C through a `bus` object with
  `read_into(register, buffer)` and `write(register, data)` (code.py: busio.I2C; the simulator: a
  register model of the chip); a free-running microsecond counter reading `now_raw` (any bit width,
  wraps handled by `Clock`); command frames from the host (`handle_command`); the link's payload
  limit and connection interval (`set_link`).
- Out: protocol v1 frames as bytes (docs/protocol.md): DATA, INFO, STOP and FAULT, from `poll` and
  `handle_command`; over serial the glue wraps each with `serial_wrap` (COBS + CRC-16) and reads
  commands with `SerialDeframer`. Also `battery_percent` and `led_pattern` for the glue.

Sample timing: the chip samples on its own oscillator (a few percent off its nominal rate). Each
FIFO read says how many samples arrived by `now`; `SampleClock` fits a line sample number -> device
microseconds under those reads (a sample is never later than the read that found it), so time
stamps follow the chip's real rate and never run backward. The line is refitted at 0.1, 0.3, 0.7,
1.5 and 2.5 s, then every second; a refit in the first seconds can step the stamps by up to ~15 %
of a sample period, later ones by a few per cent.
"""
import struct

PROTOCOL_VERSION = 1
FW_VERSION = (1, 0, 0)

DATA = 0x01
INFO = 0x02
FAULT = 0x03
CMD_START = 0x10
CMD_STOP = 0x11
CMD_SET_RATE = 0x12
CMD_RESEND_FROM = 0x13

FAULT_IMU = 1  # the motion chip does not answer on its bus (or answers as another chip)

SEQ_MODULO = 1 << 32
DATA_HEADER_BYTES = 15
SAMPLE_BYTES = 12
INFO_BYTES = 20

# The LSM6DS3TR-C as configured here: +-8 g, +-1000 dps, sensitivities from its datasheet.
RATES_HZ = (52, 104, 208, 416)
DEFAULT_RATE_HZ = 208
ACC_RANGE_G = 8
GYR_RANGE_DPS = 1000
ACC_G_PER_LSB = 0.000244   # 0.244 mg/LSB at +-8 g
GYR_DPS_PER_LSB = 0.035    # 35 mdps/LSB at +-1000 dps

DEFAULT_FLUSH_US = 7500     # one connection interval: the shortest BLE allows, what code.py asks for
MAX_FLUSH_US = 10000        # batching never holds a sample longer than this
INFO_EVERY_US = 1000000     # serial: INFO (and FAULT while faulted) once a second
IMU_RETRY_US = 1000000      # a faulted chip is tried again this often
HISTORY_SAMPLES = 4400      # resend buffer: 10.5 s at 416 Hz, 21 s at 208 Hz (16 bytes a sample)

_DATA_HEAD = "<BBIQB"
_INFO = "<BBHHHffBBBB"


def nearest_rate(rate_hz):
    """The chip's output data rate closest to a requested one (a host may ask for 200 and get 208)."""
    best = RATES_HZ[0]
    for r in RATES_HZ:
        if abs(r - rate_hz) < abs(best - rate_hz):
            best = r
    return best


def max_samples_per_frame(payload_limit):
    """How many samples fit in one DATA frame of at most `payload_limit` bytes (BLE: ATT MTU - 3)."""
    return max(0, min(255, (payload_limit - DATA_HEADER_BYTES) // SAMPLE_BYTES))


# ---------------------------------------------------------------- frames

def encode_data(seq, t_device_us, samples, n):
    """A DATA frame: `samples` holds n samples of 12 bytes in wire order (acc xyz, gyr xyz, i16 LE)."""
    return struct.pack(_DATA_HEAD, PROTOCOL_VERSION, DATA, seq % SEQ_MODULO,
                       t_device_us % (1 << 64), n) + bytes(samples)


def encode_info(rate_hz, samples_per_frame, fw_version=FW_VERSION):
    return struct.pack(_INFO, PROTOCOL_VERSION, INFO, rate_hz, ACC_RANGE_G, GYR_RANGE_DPS,
                       ACC_G_PER_LSB, GYR_DPS_PER_LSB, fw_version[0], fw_version[1], fw_version[2],
                       samples_per_frame)


def encode_stop():
    """Sensor -> host STOP: streaming stopped, the set is over."""
    return struct.pack("<BB", PROTOCOL_VERSION, CMD_STOP)


def encode_fault(code):
    return struct.pack("<BBB", PROTOCOL_VERSION, FAULT, code)


def parse_command(frame):
    """(command type, argument) of a host command frame, or None for anything else or malformed
    input (the firmware ignores what it cannot parse; it never raises on bad bytes)."""
    if len(frame) < 2 or frame[0] != PROTOCOL_VERSION:
        return None
    kind = frame[1]
    if kind in (CMD_START, CMD_STOP) and len(frame) == 2:
        return (kind, None)
    if kind == CMD_SET_RATE and len(frame) == 4:
        return (kind, struct.unpack_from("<H", frame, 2)[0])
    if kind == CMD_RESEND_FROM and len(frame) == 6:
        return (kind, struct.unpack_from("<I", frame, 2)[0])
    return None


# ---------------------------------------------------------------- serial framing

def _crc_table():
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no final XOR). CircuitPython's binascii has
    no crc_hqx, hence the table."""
    crc = 0xFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def cobs_encode(data):
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        # the next block: up to 254 non-zero bytes, ended by a zero or the end of the data
        end = start
        while end < n and end - start < 254 and data[end] != 0:
            end += 1
        out.append(end - start + 1)
        out += data[start:end]
        if end >= n:
            break
        if data[end] == 0:
            start = end + 1
            if start == n:  # a trailing zero still needs its (empty) block
                out.append(1)
                break
        else:  # a full 254-byte block, no zero consumed
            start = end
    return bytes(out)


def cobs_decode(data):
    """Raises ValueError on a malformed packet."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ValueError("bad COBS block")
        out += data[i + 1:end]
        i = end
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def serial_wrap(frame):
    """COBS(frame + CRC-16 LE) + 0x00, as sent over the USB CDC data channel."""
    return cobs_encode(bytes(frame) + struct.pack("<H", crc16(frame))) + b"\x00"


class SerialDeframer:
    """Bytes from the serial line in, checked frames out. Damaged packets are dropped and counted;
    a run of bytes without a delimiter longer than `max_packet` is discarded (bounded memory)."""

    def __init__(self, max_packet=64):
        self.buf = bytearray()
        self.max_packet = max_packet
        self.dropped = 0

    def feed(self, chunk):
        frames = []  # type: list

        self.buf += chunk
        while True:
            end = self.buf.find(b"\x00")
            if end < 0:
                if len(self.buf) > self.max_packet:
                    self.buf = bytearray()
                    self.dropped += 1
                return frames
            packet = bytes(self.buf[:end])
            self.buf = self.buf[end + 1:]
            if not packet:
                continue
            try:
                raw = cobs_decode(packet)
            except ValueError:
                self.dropped += 1
                continue
            if len(raw) < 3 or crc16(raw[:-2]) != struct.unpack_from("<H", raw, len(raw) - 2)[0]:
                self.dropped += 1
                continue
            frames.append(raw[:-2])


# ---------------------------------------------------------------- the chip

class ImuError(Exception):
    """The motion chip did not answer, or answered as another chip."""


class LSM6DS3TRC:
    """Register-level driver of the LSM6DS3TR-C FIFO (datasheet DocID 030071; ST AN5130).

    The FIFO holds 16-bit words in a pattern of 6: gyro x, y, z, then accelerometer x, y, z (data
    set 1 = gyro, set 2 = accel, both undecimated at the FIFO ODR). FIFO_STATUS1/2 count unread
    words, FIFO_STATUS3/4 say which word of the pattern comes next, so a read that starts mid-pattern
    (after an overrun) realigns by skipping to word 0. FIFO_DATA_OUT_L/H are read in one burst: the
    address pointer rolls back from FIFO_DATA_OUT_H to _L (AN5130). adafruit_lsm6ds has no FIFO
    support, hence this driver."""

    ADDRESS = 0x6A           # SA0 low, as on the XIAO nRF52840 Sense
    WHO_AM_I = 0x0F
    CHIP_ID = 0x6A
    FIFO_CTRL3 = 0x08
    FIFO_CTRL5 = 0x0A
    CTRL1_XL = 0x10
    CTRL2_G = 0x11
    CTRL3_C = 0x12
    FIFO_STATUS1 = 0x3A
    FIFO_DATA_OUT_L = 0x3E
    ODR_CODE = {52: 0x3, 104: 0x4, 208: 0x5, 416: 0x6}   # CTRL1_XL/CTRL2_G ODR and FIFO_CTRL5 ODR_FIFO
    FS_XL_8G = 0x3 << 2      # CTRL1_XL FS_XL = 11: +-8 g
    FS_G_1000 = 0x2 << 2     # CTRL2_G FS_G = 10: +-1000 dps
    FIFO_CONTINUOUS = 0x6    # FIFO_CTRL5 FIFO_MODE = 110
    CTRL3_BDU_IFINC = 0x44   # block data update + register address auto-increment
    CTRL3_SW_RESET = 0x01
    OVER_RUN = 0x40          # FIFO_STATUS2
    PATTERN_WORDS = 6
    MAX_BURST_SETS = 32      # 384 bytes per I2C read: bounded buffer, and the loop stays responsive

    def __init__(self, bus):
        self.bus = bus
        self._one = bytearray(1)
        self._status = bytearray(4)
        self._burst = bytearray(self.MAX_BURST_SETS * 12)
        self.overruns = 0

    def _write(self, reg, value):
        self.bus.write(reg, bytes((value,)))

    def begin(self, rate_hz):
        """Check the chip is there, reset it and start the FIFO at rate_hz. Raises ImuError."""
        try:
            self.bus.read_into(self.WHO_AM_I, self._one)
            if self._one[0] != self.CHIP_ID:
                raise ImuError("WHO_AM_I reads 0x%02x, not 0x%02x" % (self._one[0], self.CHIP_ID))
            self._write(self.CTRL3_C, self.CTRL3_SW_RESET)
            self._write(self.CTRL3_C, self.CTRL3_BDU_IFINC)
            self._write(self.FIFO_CTRL3, 0x09)   # DEC_FIFO_GYRO = 001, DEC_FIFO_XL = 001: no decimation
            self.set_rate(rate_hz)
        except OSError as e:
            raise ImuError("no answer on the bus: %s" % e)

    def set_rate(self, rate_hz):
        code = self.ODR_CODE[rate_hz]
        try:
            self._write(self.FIFO_CTRL5, 0)  # bypass: empties the FIFO, so no old-rate sample stays
            self._write(self.CTRL1_XL, (code << 4) | self.FS_XL_8G)
            self._write(self.CTRL2_G, (code << 4) | self.FS_G_1000)
            self._write(self.FIFO_CTRL5, (code << 3) | self.FIFO_CONTINUOUS)
        except OSError as e:
            raise ImuError("no answer on the bus: %s" % e)

    def power_down(self):
        try:
            self._write(self.FIFO_CTRL5, 0)
            self._write(self.CTRL1_XL, 0)
            self._write(self.CTRL2_G, 0)
        except OSError as e:
            raise ImuError("no answer on the bus: %s" % e)

    def read(self, out):
        """Append every complete sample waiting in the FIFO to `out` (bytearray) in wire order: acc
        x, y, z then gyr x, y, z, raw i16 LE. Returns the number of samples. Raises ImuError."""
        try:
            self.bus.read_into(self.FIFO_STATUS1, self._status)
            st = self._status
            words = st[0] | ((st[1] & 0x07) << 8)
            if st[1] & self.OVER_RUN:
                self.overruns += 1
            pattern = st[2] | ((st[3] & 0x03) << 8)
            # realign: drop words until the next one is gyro x (pattern word 0)
            skip = (self.PATTERN_WORDS - pattern) % self.PATTERN_WORDS
            two = bytearray(2)
            while skip and words:
                self.bus.read_into(self.FIFO_DATA_OUT_L, two)
                skip -= 1
                words -= 1
            sets = words // self.PATTERN_WORDS
            got = 0
            while sets > 0:
                k = min(sets, self.MAX_BURST_SETS)
                view = memoryview(self._burst)[:k * 12]
                self.bus.read_into(self.FIFO_DATA_OUT_L, view)
                for i in range(k):
                    o = i * 12
                    out += view[o + 6:o + 12]  # accel (pattern words 3-5)
                    out += view[o:o + 6]       # gyro (pattern words 0-2)
                sets -= k
                got += k
            return got
        except OSError as e:
            raise ImuError("no answer on the bus: %s" % e)


# ---------------------------------------------------------------- time

class Clock:
    """Extends a free-running counter of `bits` bits (microseconds) to an unbounded count. Must be
    read at least once per wrap period (2**32 us is 71 minutes)."""

    def __init__(self, bits=32):
        self.modulo = 1 << bits
        self.high = 0
        self.last = None

    def extend(self, raw):
        raw = raw % self.modulo
        if self.last is not None and raw < self.last:
            self.high += self.modulo
        self.last = raw
        return self.high + raw


class SampleClock:
    """Device time of each sample from FIFO reads. A read at `now_us` that finds the chip's sample
    count at `count` is a point (count - 1, now_us) on or above the true line index -> time (a
    sample is never later than the read that found it). Per bin of reads the point lowest against
    the current line (the read that came right after a sample) lies close to the truth; the line
    through the first bin's and the latest bin's lowest points gives the chip's real period (its
    oscillator is a few percent off nominal). The line changes only at the end of a bin (0.1 s at
    first, doubling to 1 s), so stamps are smooth; a stamp is never later than the read that found
    its sample and never before the previous one."""

    # the period is measured over at least this span: a lowest point can sit up to a poll interval
    # above the truth, and over a few samples that error would tilt the line by per cent
    MIN_SPAN_US = 250000

    def __init__(self, rate_hz, first_bin_us=100000, max_bin_us=1000000):
        self.nominal_us = 1000000.0 / rate_hz
        self.period_us = self.nominal_us
        self.bin_us = first_bin_us
        self.max_bin_us = max_bin_us
        self.first = None     # (index, t_us): lowest point of the first complete bin
        self.best = None      # (index, t_us, residual): lowest point so far in the current bin
        self.line = (0, 0.0)  # (index, t_us) the stamps follow, at slope period_us
        self.bin_end = None
        self.read_us = 0
        self.last_t = None

    def observe(self, now_us, count):
        """`count` samples taken since the chip started, the last of them at or before now_us."""
        if count <= 0:
            return
        self.read_us = now_us
        index = count - 1
        residual = now_us - index * self.period_us
        if self.best is None or residual < self.best[2]:
            self.best = (index, now_us, residual)
        if self.bin_end is None:
            self.bin_end = now_us + self.bin_us
        if self.first is None:
            self.line = (self.best[0], self.best[1])  # first bin: follow the lowest point so far
        if now_us < self.bin_end:
            return
        if self.first is None:
            self.first = (self.best[0], self.best[1])
        elif (self.best[0] - self.first[0]) * self.nominal_us >= self.MIN_SPAN_US:
            period = (self.best[1] - self.first[1]) / (self.best[0] - self.first[0])
            self.period_us = min(1.1 * self.nominal_us, max(0.9 * self.nominal_us, period))
        self.line = (self.best[0], self.best[1])
        self.best = None
        self.bin_us = min(self.max_bin_us, 2 * self.bin_us)
        self.bin_end = now_us + self.bin_us

    def stamp(self, index):
        """Device time (us, float) of sample `index` (0 = the chip's first sample at this rate)."""
        i0, t0 = self.line
        ts = t0 + (index - i0) * self.period_us
        if ts > self.read_us:
            ts = self.read_us
        if self.last_t is not None and ts < self.last_t + 0.5 * self.nominal_us:
            ts = self.last_t + 0.5 * self.nominal_us
        self.last_t = ts
        return ts


# ---------------------------------------------------------------- the firmware

class Firmware:
    """The sensor's behaviour, driven by the glue's loop: `poll(now_raw)` as often as it can (every
    few ms), `handle_command(frame, now_raw)` for each host command, `set_link(...)` when a link
    comes or its MTU changes, `disconnected()` when it goes. Both return frames to send, in order.

    Sampling starts with the first START and goes on through a lost link (the resend buffer fills)
    until STOP. DATA frames go out only while streaming (after START, until STOP or a lost link),
    each holding up to `samples_per_frame` samples: `max_spf` fitted to the link's payload; a
    partial frame goes out once its oldest sample is `flush_us` old (one connection interval)."""

    def __init__(self, bus, max_spf=4, rate_hz=DEFAULT_RATE_HZ, history_samples=HISTORY_SAMPLES,
                 counter_bits=32, info_every_us=0, fw_version=FW_VERSION):
        self.imu = LSM6DS3TRC(bus)
        self.clock = Clock(counter_bits)
        self.fw_version = fw_version
        self.rate_hz = nearest_rate(rate_hz)
        self.max_spf = max(1, min(255, max_spf))
        self.spf = self.max_spf
        self.flush_us = DEFAULT_FLUSH_US
        self.info_every_us = info_every_us
        self.sampling = False
        self.streaming = False
        self.fault = 0
        self.seq = 0                  # sequence number of the next sample
        self.now_us = 0
        self._chip_count = 0          # samples read since the chip (re)started at this rate
        self._sclock = SampleClock(self.rate_hz)
        self._pending = bytearray()
        self._pending_n = 0
        self._pending_seq = 0
        self._pending_t = 0
        self._next_info = 0
        self._next_retry = 0
        # resend buffer: a ring of samples, 12 bytes each, and the low 32 bits of their stamps
        self.history_samples = history_samples
        self._hist = bytearray(history_samples * SAMPLE_BYTES)
        self._hist_t = bytearray(history_samples * 4)
        self._hist_len = 0
        self._hist_next = 0           # ring index of the next sample
        self._hist_end_seq = 0        # sequence number after the newest kept sample
        self._read_buf = bytearray()
        self._ready = []              # complete frames not yet handed out
        self._resend_end = None       # after RESEND_FROM while idle: where the resend ended
        self.link = None              # the glue's note of which link streams ("ble", "usb")

    # -- what the host sees
    def info_frame(self):
        return encode_info(self.rate_hz, self.spf, self.fw_version)

    def set_link(self, payload_limit, interval_us=DEFAULT_FLUSH_US):
        """A link's largest frame (BLE: ATT MTU - 3; serial: anything large) and its connection
        interval. Frames are fitted to it; a link too small for one sample carries no DATA."""
        self.spf = min(self.max_spf, max_samples_per_frame(payload_limit))
        self.flush_us = max(1000, min(MAX_FLUSH_US, int(interval_us)))

    def disconnected(self):
        """The link is gone: keep sampling into the resend buffer, stream again only after START."""
        self.streaming = False

    # -- commands
    def handle_command(self, frame, now_raw=None):
        if now_raw is not None:
            self.now_us = self.clock.extend(now_raw)
        cmd = parse_command(frame)
        if cmd is None:
            return []
        kind, arg = cmd
        out = []
        if kind == CMD_START:
            if not self.sampling:
                self._start_sampling()
            if not self.streaming:
                if self._resend_end is not None:
                    # what was read since the resend, so the host's stream has no hole
                    out += self.resend_from(self._resend_end)
                self._drop_pending()  # a fresh session starts live; after a resend it is covered
            self._resend_end = None
            self.streaming = True
            self._next_info = self.now_us + self.info_every_us
            out.append(self.info_frame())
            if self.fault:
                out.append(encode_fault(self.fault))
        elif kind == CMD_STOP:
            out += self._drain_and_flush()
            self.streaming = False
            self.sampling = False
            if not self.fault:
                try:
                    self.imu.power_down()
                except ImuError:
                    self._set_fault()
        elif kind == CMD_SET_RATE:
            rate = nearest_rate(arg)
            if rate != self.rate_hz:
                out += self._drain_and_flush()  # samples at the old rate go out at the old rate
                self.rate_hz = rate
                self._clear_history()  # a resent frame must not mix two rates
                if self.sampling:
                    self._restart_chip()
            out.append(self.info_frame())
        elif kind == CMD_RESEND_FROM:
            out += self.resend_from(arg)
            if not self.streaming:
                # START follows: it sends what is read in between; the pending samples were resent
                self._resend_end = self._hist_end_seq
                self._drop_pending()
        return out

    def _drop_pending(self):
        self._pending = bytearray()
        self._pending_n = 0
        self._ready = []

    def resend_from(self, from_seq):
        """DATA frames of the kept samples from `from_seq` on (or the oldest kept), in order."""
        n_kept = self._hist_len
        if n_kept == 0 or self.spf < 1:
            return []
        oldest = (self._hist_end_seq - n_kept) % SEQ_MODULO
        ahead = (from_seq - oldest) % SEQ_MODULO
        skip = ahead if ahead < n_kept else (0 if ahead >= SEQ_MODULO // 2 else n_kept)
        out = []
        i = skip
        high = self.now_us - (self.now_us % (1 << 32))
        while i < n_kept:
            n = min(self.spf, n_kept - i)
            ring = (self._hist_next - n_kept + i) % self.history_samples
            body = bytearray()
            for j in range(n):
                r = (ring + j) % self.history_samples
                body += self._hist[r * SAMPLE_BYTES:(r + 1) * SAMPLE_BYTES]
            r0 = ring
            t_low = struct.unpack_from("<I", self._hist_t, r0 * 4)[0]
            t = high + t_low
            if t > self.now_us:  # stamped before the low 32 bits last wrapped
                t -= 1 << 32
            out.append(encode_data((oldest + i) % SEQ_MODULO, t, body, n))
            i += n
        return out

    # -- the loop
    def poll(self, now_raw):
        """Read the FIFO, stamp and batch the samples; returns frames to send now."""
        self.now_us = now = self.clock.extend(now_raw)
        out = []
        if self.sampling and self.fault and now >= self._next_retry:
            self._restart_chip()
        if self.sampling and not self.fault:
            try:
                self._read_samples()
            except ImuError:
                self._set_fault()
        out += self._frames_due(False)
        if self.streaming and self.info_every_us and now >= self._next_info:
            self._next_info = now + self.info_every_us
            out.append(self.info_frame())
            if self.fault:
                out.append(encode_fault(self.fault))
        return out

    def flush(self):
        """Send the partial frame now (the glue calls this before it goes quiet)."""
        return self._frames_due(True)

    # -- internals
    def _start_sampling(self):
        self.sampling = True
        self._restart_chip()

    def _restart_chip(self):
        self._chip_count = 0
        self._sclock = SampleClock(self.rate_hz)
        try:
            self.imu.begin(self.rate_hz)
            self.fault = 0
        except ImuError:
            self._set_fault()

    def _set_fault(self):
        self.fault = FAULT_IMU
        self._next_retry = self.now_us + IMU_RETRY_US

    def _read_samples(self):
        buf = self._read_buf
        buf[:] = b""
        k = self.imu.read(buf)
        if k == 0:
            return
        self._chip_count += k
        self._sclock.observe(self.now_us, self._chip_count)
        first_index = self._chip_count - k
        for i in range(k):
            t = int(self._sclock.stamp(first_index + i))
            if self._pending_n == 0:
                self._pending_seq = self.seq
                self._pending_t = t
            sample = buf[i * SAMPLE_BYTES:(i + 1) * SAMPLE_BYTES]
            self._pending += sample
            self._pending_n += 1
            self._keep(sample, t)
            self.seq = (self.seq + 1) % SEQ_MODULO
            if self._pending_n >= max(1, self.spf):
                self._emit()

    def _keep(self, sample, t):
        r = self._hist_next
        self._hist[r * SAMPLE_BYTES:(r + 1) * SAMPLE_BYTES] = sample
        struct.pack_into("<I", self._hist_t, r * 4, t % (1 << 32))
        self._hist_next = (r + 1) % self.history_samples
        self._hist_len = min(self._hist_len + 1, self.history_samples)
        self._hist_end_seq = (self.seq + 1) % SEQ_MODULO

    def _clear_history(self):
        self._hist_len = 0

    def _frames_due(self, force):
        out = self._ready
        self._ready = []
        if self._pending_n and (force or self.now_us - self._pending_t >= self.flush_us):
            self._emit()
            out += self._ready
            self._ready = []
        if not self.streaming or self.spf < 1:
            return []
        return out

    def _emit(self):
        frame = encode_data(self._pending_seq, self._pending_t, self._pending, self._pending_n)
        self._pending = bytearray()
        self._pending_n = 0
        self._ready = self._ready + [frame]

    def _drain_and_flush(self):
        if self.sampling and not self.fault:
            try:
                self._read_samples()
            except ImuError:
                self._set_fault()
        return self._frames_due(True)


# ---------------------------------------------------------------- advertising

def uuid128_le(text):
    """A 128-bit UUID string as the 16 little-endian bytes advertising carries."""
    raw = bytes.fromhex(text.replace("-", ""))
    return bytes(reversed(raw))


def advertising_data(service_uuid, battery_pct):
    """ADV_IND payload (docs/protocol.md): flags, the hiplevel service UUID, battery service data."""
    return (bytes((2, 0x01, 0x06)) + bytes((17, 0x07)) + uuid128_le(service_uuid)
            + bytes((4, 0x16, 0x0F, 0x18, max(0, min(100, battery_pct)))))


def scan_response_data(name):
    raw = name.encode()
    if len(raw) > 29:
        raise ValueError("the name is longer than 29 bytes")
    return bytes((len(raw) + 1, 0x09)) + raw


# ---------------------------------------------------------------- battery and LED

# LiPo open-circuit voltage -> state of charge (a typical 1-cell curve, volts, percent)
_LIPO_CURVE = ((3.30, 0), (3.50, 5), (3.60, 10), (3.70, 25), (3.75, 40), (3.80, 55), (3.85, 65),
               (3.90, 75), (4.00, 85), (4.10, 95), (4.20, 100))
LOW_BATTERY_PCT = 15


def battery_percent(volts):
    """State of charge of a 1-cell LiPo from its voltage, 0..100, linear between curve points."""
    if volts <= _LIPO_CURVE[0][0]:
        return 0
    for i in range(1, len(_LIPO_CURVE)):
        v1, p1 = _LIPO_CURVE[i]
        if volts <= v1:
            v0, p0 = _LIPO_CURVE[i - 1]
            return int(round(p0 + (p1 - p0) * (volts - v0) / (v1 - v0)))
    return 100


def led_state(connected, streaming, fault, battery_pct):
    """What the LED shows, by priority: fault, low battery, streaming, connected, advertising."""
    if fault:
        return "fault"
    if battery_pct < LOW_BATTERY_PCT:
        return "low_battery"
    if streaming:
        return "streaming"
    if connected:
        return "connected"
    return "advertising"


# state -> (red, green, blue, blink period ms; 0 = steady)
LED_PATTERNS = {
    "advertising": (0, 0, 1, 1000),  # blue, blinking
    "connected": (0, 0, 1, 0),       # blue, steady
    "streaming": (0, 1, 0, 0),       # green, steady
    "low_battery": (1, 1, 0, 500),   # amber, blinking
    "fault": (1, 0, 0, 0),           # red, steady
}


def led_pattern(state, t_ms):
    """(red, green, blue) on/off at time t_ms for a state: blinking states are on for the first
    tenth of their period (short flashes save the battery)."""
    r, g, b, period = LED_PATTERNS[state]
    if period and (t_ms % period) >= period // 10:
        return (0, 0, 0)
    return (r, g, b)
