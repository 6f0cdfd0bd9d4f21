"""`python -m hardware.enclosure [OUT_DIR]`: build the enclosure, write STL/STEP, print the numbers.

Input: optional output folder (default out/enclosure), `--set NAME=MM` overrides (repeatable),
`--drawing FILE` to also write the SVG drawing, `--list` to show every dimension. Output: body.stl
and lid.stl (print these), body.step, lid.step and assembly.step (with the board and cell as
reference volumes), and one line per measurement on stdout (build time, outside size, volumes,
STL triangle counts). Wrong input ends with one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from hardware.enclosure.params import EnclosureParams, parse_overrides


def stl_triangle_count(path: Path) -> int:
    """Binary STL: 80-byte header, then a little-endian u32 triangle count."""
    with open(path, "rb") as f:
        f.seek(80)
        return int.from_bytes(f.read(4), "little")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hardware.enclosure",
                                 description="Build the belt-sensor enclosure (STL + STEP).")
    ap.add_argument("out_dir", nargs="?", default="out/enclosure", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=MM",
                    help="override one dimension, e.g. --set wall_mm=2.4 (repeatable)")
    ap.add_argument("--drawing", type=Path, metavar="FILE",
                    help="also write the SVG drawing there (e.g. hardware/drawing.svg)")
    ap.add_argument("--list", action="store_true", help="print every dimension and exit")
    args = ap.parse_args(argv)
    try:
        params = EnclosureParams(**parse_overrides(args.set))
        params.check()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for f in dataclasses.fields(params):
            print(f"{f.name} = {getattr(params, f.name):g}")
        return 0

    t0 = time.perf_counter()
    # build123d (OpenCascade) takes a few seconds to import: only when building.
    try:
        from hardware.enclosure.build import build_parts, export_parts
    except ImportError as e:
        print(f"error: the CAD library is missing ({e.name}): install it with "
              "`.venv/bin/pip install -e '.[cad]'` (make test installs it too).", file=sys.stderr)
        return 2
    t_import = time.perf_counter() - t0
    parts = build_parts(params)
    t1 = time.perf_counter()
    try:
        written = export_parts(parts, args.out_dir)
    except OSError as e:
        print(f"error: cannot write the files to {args.out_dir}: {e.strerror or e}.",
              file=sys.stderr)
        return 2
    t_export = time.perf_counter() - t1
    if args.drawing:
        from hardware.enclosure.drawing import drawing_svg
        args.drawing.parent.mkdir(parents=True, exist_ok=True)
        args.drawing.write_text(drawing_svg(params), encoding="utf-8")

    p = params
    print(f"build123d import: {t_import:.2f} s; build: {parts.build_s:.2f} s; "
          f"export: {t_export:.2f} s")
    print(f"outside: {p.outer_width_mm:.2f} x {p.outer_length_mm:.2f} x {p.case_height_mm:.2f} mm "
          f"(body + lid); {p.total_thickness_mm:.2f} mm thick with clip and embossed axes")
    print(f"belt room in the clip: {p.belt_room_mm:.1f} mm; clip strain with a "
          f"{p.belt_thickness_mm:g} mm belt: {p.clip_strain:.2%}; light pipe rod: "
          f"{p.light_pipe_mm:g} mm x {p.light_pipe_length_mm:.1f} mm")
    for name, part in parts.printed.items():
        tris = stl_triangle_count(written[f"{name}.stl"])
        print(f"{name}: volume {part.volume / 1000:.2f} cm3, {tris} STL triangles")
    for name, path in written.items():
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    if args.drawing:
        print(f"wrote {args.drawing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
