"""Loads the firmware core (hardware/firmware/hiplevel_core.py) under CPython, as the board does.

On the board the core is a top-level module on CIRCUITPY (`import hiplevel_core` in code.py). Here it
is loaded from its file under the same name, so the simulator runs exactly the file that is copied to
the board (nothing is copied or generated). Out: the module, as `core`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "hardware" / "firmware"


def _load():
    if "hiplevel_core" in sys.modules:
        return sys.modules["hiplevel_core"]
    spec = importlib.util.spec_from_file_location("hiplevel_core", FIRMWARE_DIR / "hiplevel_core.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hiplevel_core"] = module
    spec.loader.exec_module(module)
    return module


core = _load()
