"""The live window's big angle never shows a stale angle as if it were live: while connecting and
while the link is down it says the link's state there, in the link colour; the angle comes back with
the data. Real widgets, offscreen (the window's own timer picks up the LiveBuffer status as the
session's runner sets it; the real BLE dropout through the console view is in
tests/e2e/test_link_state_messages.py)."""
from tests.gui.test_gui import live, make_window, wait_tick  # noqa: F401 - fixtures

from host.gui.qt_common import COLORS


def test_the_angle_gives_way_to_the_link_state(qtbot, live, make_window):
    w = make_window(live)
    live.update_status(calibrating=True, message="Stand still and level to calibrate…")
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Connecting to the sensor…"  # nothing came yet: no calibration prompt

    live.update_status(link="streaming", samples=400, calibrating=False, calibrated=True, obliquity_deg=6.2)
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Right hip 6° low"

    live.update_status(link="disconnected", message="Sensor connection lost: reconnecting…")
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Sensor connection lost: reconnecting…"
    assert COLORS["bad_bg"] in w.angle_label.styleSheet()
    live.update_status(link="reconnecting", message="Looking for the sensor…")
    wait_tick(qtbot, w)
    assert "looking for the sensor" in w.angle_label.text() and "°" not in w.angle_label.text()
    assert "Looking for the sensor" in w.status_label.text()

    live.update_status(link="streaming", message="", obliquity_deg=-0.2)
    wait_tick(qtbot, w)
    assert w.angle_label.text() == "Level" and COLORS["bad_bg"] not in w.angle_label.styleSheet()
