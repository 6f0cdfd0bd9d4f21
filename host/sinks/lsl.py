"""Lab Streaming Layer out (`--lsl` on run, replay and demo): the angles and the events, live.

In: a `StreamRunner` (host.session.runner) that `attach()` hooks into - its per-sample angle trace,
its events and its device->host clock map (host.processing.timing.ClockMap). Out: two LSL outlets
(pylsl, whose wheel bundles liblsl); docs/lsl.md describes them:
- "<name> angles", type Mocap: obliquity and forward tilt (degrees, docs/conventions.md) of every
  sample at the sensor rate, each stamped with its device time mapped onto the LSL clock by the
  clock map (replay: the recording's timing, starting when the replay started);
- "<name> events", type Markers, irregular: every session event as a JSON string, stamped with
  the device time it refers to (link events, which have none, with the time they happened).

Stream metadata follows the XDF conventions: channel labels, units and types, and an
`acquisition` block with manufacturer, model and `compensated_lag`: the median delay (s) between a
sample being taken and its angle reaching LSL, measured over the first second of samples; the
timestamps already account for it. The outlets are opened after that first second (the samples
of it are sent then, with their own timestamps).

liblsl discovers streams by multicast and broadcast unless configured. `use_config()` must run
before pylsl is first imported: it points liblsl (env LSLAPICFG) at a config file - by default
`lsl_local.cfg` shipped here, which keeps discovery on this machine.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError

log = logging.getLogger(__name__)

LOCAL_CONFIG = Path(__file__).with_name("lsl_local.cfg")
LAG_WINDOW_S = 1.0        # samples buffered to measure compensated_lag before the outlets open
LINGER_S = 0.5           # outlets stay this long after the end while an inlet is connected
CHANNELS = (("obliquity", "degrees", "Obliquity"), ("forward_tilt", "degrees", "ForwardTilt"))


class LslUnavailable(Exception):
    """LSL cannot be used; the message says why."""


def use_config(path: str | os.PathLike | None = None) -> str:
    """Make liblsl read `path` (default: the machine-local config). Must come before pylsl loads
    liblsl: afterwards the library has read its configuration once and for all."""
    path = str(path or LOCAL_CONFIG)
    if not os.path.isfile(path):
        raise LslUnavailable(f"the LSL configuration file {path} does not exist")
    if "pylsl" in sys.modules and os.environ.get("LSLAPICFG") != path:
        raise LslUnavailable("LSL was already started with another configuration in this process")
    os.environ["LSLAPICFG"] = path
    return path


def _pylsl():
    if not os.environ.get("LSLAPICFG"):
        # never run liblsl on its defaults here: it would multicast to the whole network
        raise LslUnavailable("LSL needs its configuration first (use_config)")
    try:
        import pylsl
    except (ImportError, RuntimeError, OSError) as e:
        raise LslUnavailable(f"LSL is not available: {e}") from None
    return pylsl


class _TeeEvents:
    """Stands in for the session's event log: passes each event on and to LSL."""

    def __init__(self, inner, on_event):
        self.inner, self.on_event = inner, on_event

    def write(self, event: dict) -> None:
        if self.inner is not None:
            self.inner.write(event)
        self.on_event(event)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class LslSink:
    def __init__(self, name: str = "hiplevel", source_id: str = "hiplevel",
                 manufacturer: str = "hiplevel", model: str = "hiplevel belt sensor",
                 replay: bool = False):
        self.lsl = _pylsl()
        self.name, self.source_id = name, source_id
        self.manufacturer, self.model = manufacturer, model
        self.replay = replay
        self.session = None
        self.angles = None            # outlets, once open
        self.markers = None
        self.compensated_lag_s: float | None = None
        self.samples_sent = 0
        self.markers_sent = 0
        self._shift_s: float | None = None   # LSL clock - mapped host clock
        self._pending: list[tuple] = []      # (t_device_s, obl, fwd, t_lsl_computed)
        self._pending_events: list[tuple] = []

    # ---- wiring
    def attach(self, session) -> "LslSink":
        """Hook into a StreamRunner before it runs: its angle trace, its events."""
        self.session = session
        pipe = session.pipeline
        inner = pipe.trace

        def trace(seq, t_device_us, obl, fwd):
            if inner is not None:
                inner(seq, t_device_us, obl, fwd)
            self.sample(t_device_us, obl, fwd)
        pipe.trace = trace
        session.events = _TeeEvents(session.events, self.event)
        return self

    def describe_sensor(self, manufacturer: str | None, model: str | None) -> None:
        if self.angles is None:  # metadata is fixed once the outlets are open
            self.manufacturer = manufacturer or self.manufacturer
            self.model = model or self.model

    # ---- time
    def _stamp(self, t_device_s: float) -> float | None:
        clock = self.session.clock
        if not clock.ready:
            return None
        host_s = clock.to_host(t_device_s)
        if self._shift_s is None:
            now_lsl = self.lsl.local_clock()
            # live: both clocks are the monotonic clock, the shift is ~0 but measured, not assumed;
            # replay: the recording's host times are from another day, start them now
            self._shift_s = (now_lsl - host_s) if self.replay else (now_lsl - time.monotonic())
        return host_s + self._shift_s

    # ---- data in
    def sample(self, t_device_us: int, obl: float, fwd: float) -> None:
        t_dev = t_device_us * 1e-6
        if self.angles is not None:
            stamp = self._stamp(t_dev)  # None only while the clock map restarts (sensor reboot)
            self.angles.push_sample([obl, fwd], stamp if stamp is not None else self.lsl.local_clock())
            self.samples_sent += 1
            return
        self._pending.append((t_dev, obl, fwd, self.lsl.local_clock()))
        first = self._pending[0][0]
        if t_dev - first >= LAG_WINDOW_S and self.session.clock.ready:
            self._open()

    def event(self, event: dict) -> None:
        pipe = self.session.pipeline if self.session is not None else None
        t_dev = None
        if pipe is not None and pipe.t0_us is not None and "t" in event:
            t_dev = pipe.t0_us * 1e-6 + float(event["t"])
        text = json.dumps(event, separators=(",", ":"), default=str)
        if self.markers is not None:
            stamp = self._stamp(t_dev) if t_dev is not None else None
            self.markers.push_sample([text], stamp if stamp is not None else self.lsl.local_clock())
            self.markers_sent += 1
        else:
            self._pending_events.append((t_dev, text, self.lsl.local_clock()))

    # ---- outlets
    def _open(self) -> None:
        t = self.session.transport  # connected by now: a third-party sensor's link names its maker
        self.describe_sensor(getattr(t, "manufacturer", None), getattr(t, "model", None))
        stamps = [self._stamp(p[0]) for p in self._pending]
        lags = sorted(p[3] - s for p, s in zip(self._pending, stamps))
        self.compensated_lag_s = lags[len(lags) // 2] if not self.replay else 0.0
        rate = float(self.session.pipeline.rate_hz)
        self.angles = self.lsl.StreamOutlet(self._angles_info(rate), 0, 360)
        self.markers = self.lsl.StreamOutlet(self._markers_info(), 0, 360)
        for (t_dev, obl, fwd, _), stamp in zip(self._pending, stamps):
            self.angles.push_sample([obl, fwd], stamp)
        self.samples_sent += len(self._pending)
        for t_dev, text, t_seen in self._pending_events:
            stamp = self._stamp(t_dev) if t_dev is not None else None
            self.markers.push_sample([text], stamp if stamp is not None else t_seen)
        self.markers_sent += len(self._pending_events)
        self._pending, self._pending_events = [], []
        log.info("LSL outlets open: %s angles at %g Hz, compensated lag %.1f ms", self.name, rate,
                 self.compensated_lag_s * 1e3)

    def _acquisition(self, desc) -> None:
        acq = desc.append_child("acquisition")
        acq.append_child_value("manufacturer", self.manufacturer)
        acq.append_child_value("model", self.model)
        acq.append_child_value("compensated_lag", f"{self.compensated_lag_s:.6f}")
        desc.append_child_value("software", "hiplevel")

    def _angles_info(self, rate_hz: float):
        lsl = self.lsl
        info = lsl.StreamInfo(f"{self.name} angles", "Mocap", len(CHANNELS), rate_hz,
                              lsl.cf_float32, f"{self.source_id}-angles")
        desc = info.desc()
        chans = desc.append_child("channels")
        for label, unit, ctype in CHANNELS:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", ctype)
        desc.append_child_value("conventions", "obliquity > 0: left side of the pelvis high; "
                                "forward_tilt > 0: leaning forward (hiplevel docs/conventions.md)")
        self._acquisition(desc)
        return info

    def _markers_info(self):
        lsl = self.lsl
        info = lsl.StreamInfo(f"{self.name} events", "Markers", 1, lsl.IRREGULAR_RATE,
                              lsl.cf_string, f"{self.source_id}-events")
        desc = info.desc()
        ch = desc.append_child("channels").append_child("channel")
        ch.append_child_value("label", "event")
        ch.append_child_value("type", "Marker")
        desc.append_child_value("format", "one JSON object per marker (hiplevel docs/events.md)")
        self._acquisition(desc)
        return info

    def close(self) -> None:
        """Open the outlets if the stream was shorter than the lag window, then close them."""
        if self.angles is None and self._pending and self.session.clock.ready:
            self._open()
        if self.angles is not None and (self.angles.have_consumers() or self.markers.have_consumers()):
            time.sleep(LINGER_S)  # let connected inlets take the last samples before the outlet goes
        self.angles = self.markers = None  # pylsl closes an outlet when it is dropped


def add_arguments(p) -> None:
    g = p.add_argument_group("Lab Streaming Layer")
    g.add_argument("--lsl", action="store_true",
                   help="stream the angles and the events to LSL (docs/lsl.md); discovery stays on "
                        "this machine unless --lsl-config names a lab's configuration")
    g.add_argument("--lsl-config", metavar="FILE", default=None,
                   help="liblsl configuration file (default: the machine-local one shipped with "
                        "hiplevel, as --lsl-local)")
    g.add_argument("--lsl-local", action="store_true",
                   help="keep LSL discovery on this machine (the default)")
    g.add_argument("--lsl-name", default="hiplevel", metavar="NAME",
                   help="stream name prefix (default hiplevel)")


@dataclass(frozen=True)
class LslSettings:
    """What the command line asked of LSL: the liblsl configuration file and the stream names."""
    config: str | None = None      # None: the machine-local file shipped here (lsl_local.cfg)
    name: str = "hiplevel"


def settings_from_args(args) -> LslSettings | None:
    """The LSL settings of a command line (add_arguments), or None when LSL was not asked for."""
    if not (getattr(args, "lsl", False) or getattr(args, "lsl_config", None)
            or getattr(args, "lsl_local", False)):
        return None
    if args.lsl_local and args.lsl_config:
        raise UserError("choose --lsl-local or --lsl-config, not both")
    return LslSettings(config=None if args.lsl_local else args.lsl_config, name=args.lsl_name)


def open_sink(settings: LslSettings | None, replay: bool = False) -> LslSink | None:
    """The LSL sink for these settings (None without them), not yet attached to a session.
    Raises UserError when LSL cannot be used here, before anything has started."""
    if settings is None:
        return None
    try:
        use_config(settings.config)
        return LslSink(name=settings.name, source_id=f"{settings.name}-{os.getpid()}", replay=replay)
    except LslUnavailable as e:
        raise UserError(str(e)) from None
