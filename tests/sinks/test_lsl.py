"""`hiplevel run --lsl` against the simulated sensor: an LSL inlet in this test process receives the
angle stream and the event markers (sample count, rate, timestamps against device time, every
event), and nothing of liblsl's leaves the loopback interface - its sockets, the multicast groups
joined on this machine and, where tcpdump can run, a capture on every interface.

liblsl multicasts to the whole network on its defaults: this module points it at the
machine-local configuration before pylsl is imported, for this process and the app it starts."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from host.sinks.lsl import LOCAL_CONFIG

os.environ["LSLAPICFG"] = str(LOCAL_CONFIG)  # before pylsl loads liblsl: never its defaults here
pylsl = pytest.importorskip("pylsl")

from tests.support.simproc import ROOT, Sim, hiplevel  # noqa: E402

RATE_HZ = 208  # the simulated chip's default output rate (firmware_sim, --odr-error 0: exactly)
LSL_PORTS = "portrange 16571-16604"  # MulticastPort and BasePort + PortRange (liblsl defaults)
# liblsl's default discovery groups, as /proc/net/igmp writes them (hex, little-endian) and IPv6
LSL_GROUPS_V4 = {"D7ACFFEF": "239.255.172.215", "B70000E0": "224.0.0.183"}
LSL_GROUP_V6 = "113d6fdd2c17a643ffe21bd13cd2"


def _sockets(pid: int) -> list[tuple[str, str, str, str]]:
    """(protocol, state, local, peer) of every inet socket of process `pid` (ss -t -u -a -n -p)."""
    out = subprocess.run(["ss", "-t", "-u", "-a", "-n", "-p"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        if f"pid={pid}," in line:
            f = line.split()
            rows.append((f[0], f[1], f[4], f[5]))
    return rows


def _address(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


def _capture():
    """tcpdump on every interface for liblsl's ports and groups, or None where it cannot run."""
    if shutil.which("tcpdump") is None or os.geteuid() != 0:
        return None
    proc = subprocess.Popen(["tcpdump", "-i", "any", "-n", "-l", "-q",
                             f"({LSL_PORTS}) or dst net 224.0.0.0/4 or dst host 255.255.255.255"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # tcpdump attaches its filter
    if proc.poll() is not None:
        return None
    return proc


def test_run_streams_angles_and_events_to_an_inlet_and_nothing_leaves_loopback(tmp_path):
    ev, ang = tmp_path / "ev.jsonl", tmp_path / "ang.csv"
    name = f"hiptest{os.getpid()}"
    capture = _capture()
    sim = Sim("--drops", "4,8,5", "--bends", "0", "--rep-seconds", "2.5", "--clock-ppm", "40",
              "--odr-error", "0")
    out_file, err_file = open(tmp_path / "out.txt", "w+"), open(tmp_path / "err.txt", "w+")
    app = subprocess.Popen(hiplevel("run", "--serial", sim.port, "--calibration", "standing",
                                    "--headless", "--mute", "--no-record", "--events", ev,
                                    "--angles", ang, "--lsl", "--lsl-name", name),
                           stdout=out_file, stderr=err_file, text=True, cwd=ROOT)
    try:
        found = {}
        deadline = time.monotonic() + 30
        while len(found) < 2 and time.monotonic() < deadline and app.poll() is None:
            for info in pylsl.resolve_byprop("source_id", f"{name}-{app.pid}-angles", 1, 1.0) + \
                    pylsl.resolve_byprop("source_id", f"{name}-{app.pid}-events", 1, 1.0):
                found[info.type()] = info
        assert set(found) == {"Mocap", "Markers"}, (tmp_path / "err.txt").read_text()
        angles = pylsl.StreamInlet(found["Mocap"], max_buflen=120)
        markers = pylsl.StreamInlet(found["Markers"], max_buflen=120)
        full = angles.info(5.0)
        angles.open_stream(5.0)
        markers.open_stream(5.0)
        sockets = _sockets(app.pid)  # while it streams
        correction = angles.time_correction(5.0)  # outlet clock -> ours (same machine: ~0)
        samples, stamps, texts, text_stamps = [], [], [], []
        while True:
            chunk, ts = angles.pull_chunk(timeout=0.2)
            samples += chunk
            stamps += ts
            mchunk, mts = markers.pull_chunk(timeout=0.0)
            texts += [m[0] for m in mchunk]
            text_stamps += mts
            if app.poll() is not None and not chunk and not mchunk:
                break
        app.wait(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
        sim.stop()
        if capture is not None:
            capture.send_signal(signal.SIGINT)
            cap_out, _ = capture.communicate(timeout=10)
    assert app.returncode == 0, (tmp_path / "err.txt").read_text() + (tmp_path / "out.txt").read_text()

    # metadata (XDF conventions)
    assert full.nominal_srate() == RATE_HZ and full.channel_count() == 2
    desc = full.desc()
    ch = desc.child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append((ch.child_value("label"), ch.child_value("unit")))
        ch = ch.next_sibling()
    assert labels == [("obliquity", "degrees"), ("forward_tilt", "degrees")]
    acq = desc.child("acquisition")
    assert acq.child_value("manufacturer") == "hiplevel"
    lag = float(acq.child_value("compensated_lag"))
    assert 0.0 < lag < 0.2  # sample taken -> angle in LSL: frame batching, serial link, processing

    # from the sample the inlet joined at (LSL sends an inlet what is pushed after it connects),
    # every sample of the angle file, in order
    trace = np.genfromtxt(ang, delimiter=",", names=True)
    got = np.array(samples)
    i0 = next(i for i in range(len(trace)) if np.allclose(trace["obliquity_deg"][i:i + 5], got[:5, 0],
                                                          atol=1e-4))
    # events' t counts from the stream's first sample (seq 0; the angle file starts at calibration)
    t_first_dev = (trace["t_device_us"][0] - trace["seq"][0] * 1e6 / RATE_HZ) * 1e-6
    trace = trace[i0:]
    assert len(samples) == len(trace) > RATE_HZ * 6
    np.testing.assert_allclose(got[:, 0], trace["obliquity_deg"], atol=1e-4)
    np.testing.assert_allclose(got[:, 1], trace["forward_tilt_deg"], atol=1e-4)
    t_dev = trace["t_device_us"] * 1e-6
    stamps = np.array(stamps) + correction
    slope, icpt = np.polyfit(t_dev - t_dev[0], stamps, 1)
    resid = stamps - (icpt + slope * (t_dev - t_dev[0]))
    assert abs(slope - 1.0) < 500e-6      # LSL seconds per device second (the sim runs 40 ppm fast)
    assert np.max(np.abs(resid)) < 0.010  # each stamp on the mapped device time, within 10 ms
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(rate - RATE_HZ) < 0.5
    assert abs(stamps[-1] - time.monotonic()) < 60  # on this machine's LSL clock, not another

    # every event, as JSON, stamped at its device time
    events = [json.loads(line) for line in open(ev)]
    got = [json.loads(t) for t in texts]
    j0 = events.index(got[0])  # markers pushed before the inlet connected are not sent to it
    assert got == events[j0:] and got[-1]["event"] == "end"
    assert sum(e["event"] == "rep" for e in got) == 3
    rep = next(i for i, e in enumerate(got) if e["event"] == "rep")
    t_rep_dev = t_first_dev + got[rep]["t"]
    k = np.searchsorted(t_dev, t_rep_dev)
    assert abs(text_stamps[rep] + correction - stamps[min(k, len(stamps) - 1)]) < 0.05

    # nothing of liblsl's beyond loopback: sockets, multicast memberships, packets
    assert sockets, "no sockets seen for the app"
    for proto, state, local, peer in sockets:
        assert _address(local) in ("127.0.0.1", "0.0.0.0", "*"), (proto, local)
        assert _address(peer) in ("127.0.0.1", "0.0.0.0", "*"), (proto, peer)
    igmp = open("/proc/net/igmp").read()
    assert not any(g in igmp for g in LSL_GROUPS_V4), igmp
    if os.path.exists("/proc/net/igmp6"):
        assert LSL_GROUP_V6 not in open("/proc/net/igmp6").read()
    if capture is not None:
        lines = [line for line in cap_out.splitlines() if " IP" in line]
        beyond = [line for line in lines if not re.search(r"IP6? 127\.\S+ > 127\.", line)]
        assert lines, "the capture saw not even liblsl's loopback traffic"
        assert beyond == [], beyond[:5]
