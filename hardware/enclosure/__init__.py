"""Parametric belt-clip enclosure for the Seeed XIAO nRF52840 Sense and a LiPo cell (build123d).

`EnclosureParams` (params.py) holds every dimension; `build_parts` (build.py) turns them into the
printed body and lid plus reference volumes; `export_parts` writes STL and STEP; `drawing_svg`
(drawing.py) draws the parts and the wiring from the same numbers. `python -m hardware.enclosure
[OUT_DIR]` (or `make enclosure`) does all of it and prints the measurements.
"""

from hardware.enclosure.params import EnclosureParams

__all__ = ["EnclosureParams"]
