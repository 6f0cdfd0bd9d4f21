"""Is there a real display? Answered without loading Qt, so a command can choose the console view
(or say why a window cannot open) before paying for Qt's import.

In: the environment (QT_QPA_PLATFORM, DISPLAY, WAYLAND_DISPLAY, XDG_RUNTIME_DIR). Out: a bool; the
X11 or Wayland socket is actually connected to, since a stale DISPLAY is common over ssh.
"""
from __future__ import annotations

import os
import socket
import sys


def _connectable_unix(path: str, abstract: bool = False) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(("\0" + path) if abstract else path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _x11_connectable(display: str) -> bool:
    if display.startswith("/"):          # launchd socket path (XQuartz): DISPLAY is the socket itself
        return _connectable_unix(display)
    host, sep, rest = display.rpartition(":")
    if not sep:
        return False
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connectable_unix(path) or (sys.platform.startswith("linux")
                                           and _connectable_unix(path, abstract=True))
    try:
        with socket.create_connection((host, 6000 + int(number)), timeout=1.0):
            return True
    except OSError:
        return False


def _wayland_connectable(name: str) -> bool:
    path = name if os.path.isabs(name) else os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), name)
    return _connectable_unix(path)


def qt_display_available() -> bool:
    """Whether a real display is usable: DISPLAY or WAYLAND_DISPLAY set and connectable.

    QT_QPA_PLATFORM=offscreen (or minimal) counts as no display; other explicitly chosen platforms
    (eglfs, linuxfb, ...) draw on a screen of their own and are trusted.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if platform in ("offscreen", "minimal", "minimalegl"):
        return False
    if sys.platform in ("darwin", "win32") and platform in ("", "cocoa", "windows"):
        return True
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    x11 = os.environ.get("DISPLAY", "")
    if platform.startswith("wayland"):
        return bool(wayland) and _wayland_connectable(wayland)
    if platform == "xcb":
        return bool(x11) and _x11_connectable(x11)
    if platform:
        return True
    return bool((wayland and _wayland_connectable(wayland)) or (x11 and _x11_connectable(x11)))
