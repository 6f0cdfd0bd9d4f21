"""The enclosure builds into closed solids that hold the real board and cell where they belong.

Builds the default enclosure once (build123d, the real OpenCascade kernel), then checks the printed
parts are valid, watertight single solids of the intended outside size; the XIAO's envelope fits
its pocket with clearance and is shut in on every side except through the USB-C opening, which
lines up with the connector; the cell and the light pipe fit; the clip takes a 50 mm belt; the
axes on the face point as docs/conventions.md says; the STL/STEP files written by the command
re-load (STL checked edge by edge with numpy, STEP through OpenCascade); hardware/drawing.svg is
what the parameters draw today.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

build123d = pytest.importorskip("build123d", reason="the CAD extra is not installed: "
                                "pip install -e '.[cad]'")

from build123d import Pos, import_step  # noqa: E402

from hardware.enclosure.__main__ import main  # noqa: E402
from hardware.enclosure.build import box, build_parts, ray_hits  # noqa: E402
from hardware.enclosure.drawing import drawing_svg  # noqa: E402
from hardware.enclosure.params import EnclosureParams  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parts():
    return build_parts(EnclosureParams())


@pytest.fixture(scope="module")
def shell(parts):
    """Everything that closes the board in: body, lid and the light-pipe rod in its hole."""
    return parts.body + parts.lid + parts.light_pipe


def _overlap(a, b) -> float:
    common = a & b
    return sum(s.volume for s in common.solids()) if common is not None else 0.0


def test_printed_parts_are_valid_closed_single_solids(parts):
    for name, part in parts.printed.items():
        assert part.is_valid, name
        assert len(part.solids()) == 1, f"{name} falls apart into {len(part.solids())} solids"
        assert part.is_manifold, f"{name} has an edge not shared by exactly two faces"
        assert part.volume > 1000, name  # mm3; a cut gone wrong would leave a sliver
    # the two parts meet on the lid plane but do not overlap
    assert _overlap(parts.body, parts.lid) < 1e-6


def test_outside_dimensions_are_the_intended_ones(parts):
    p = parts.params
    # Intended size for the default parts, worked out by hand: width = cell 19.75 + 2 x 0.3 fit
    # + 2 x 2.0 wall; length = wall 2 + 0.2 + board 21 + 0.3 + rib 5 + 0.3 + cell 26 + 0.3 + top
    # block 6.5 (the USB-C shell's 0.35 mm overhang reaches into the wall's opening); height =
    # floor 2 + pocket (1.2 standoff + 1.2 PCB + 3.26 USB-C + 0.3) + lid 2.
    assert p.outer_width_mm == pytest.approx(24.35)
    assert p.outer_length_mm == pytest.approx(61.6)
    assert p.case_height_mm == pytest.approx(9.96)
    shell_only = parts.body + parts.lid
    bb = shell_only.bounding_box()
    assert (bb.min.X, bb.max.X) == pytest.approx((-24.35 / 2, 24.35 / 2), abs=1e-3)
    assert (bb.min.Y, bb.max.Y) == pytest.approx((0.0, 61.6), abs=1e-3)
    # back of the clip to the top of the embossed axes
    assert bb.min.Z == pytest.approx(-(p.clip_gap_mm + p.clip_thickness_mm), abs=1e-3)
    assert bb.max.Z == pytest.approx(9.96 + p.mark_height_mm, abs=1e-3)
    # the lid's plate (without the marks) ends at the case height
    lid_bb = parts.lid.bounding_box()
    assert lid_bb.min.Z == pytest.approx(p.body_height_mm, abs=1e-3)


def test_board_and_cell_fit_their_pockets_with_clearance(parts, shell):
    p = parts.params
    for name, ref in (("board", parts.board), ("cell", parts.cell)):
        assert _overlap(shell, ref) < 1e-6, f"the {name} collides with the enclosure"
    # The board can move by most of its clearance sideways, upwards and away from the USB wall
    # without touching; it rests on its ledges (a little lower collides), its PCB edge sits close
    # to the bottom wall, and the USB-C shell's front reaches into the wall so the plug meets it.
    d = 0.8 * p.fit_mm
    for dx, dy, dz in ((d, 0, 0), (-d, 0, 0), (0, d, 0), (0, 0, 0.8 * p.head_room_mm)):
        assert _overlap(shell, Pos(dx, dy, dz) * parts.board) < 1e-6, (dx, dy, dz)
    assert _overlap(shell, Pos(0, 0, -0.05) * parts.board) > 0, "the board is not supported"
    assert _overlap(shell, Pos(0, -(p.usb_end_fit_mm + 0.1), 0) * parts.board) > 0
    assert parts.usb.bounding_box().min.Y < p.wall_mm
    # The cell lies on the floor and has room over it (foam tape).
    assert _overlap(shell, Pos(0, 0, -0.05) * parts.cell) > 0
    assert _overlap(shell, Pos(0, 0, 1.0) * parts.cell) < 1e-6
    # The light pipe sits in the lid, reaches down to just above the LED, touches no part.
    assert _overlap(parts.light_pipe, parts.board) < 1e-6
    assert _overlap(parts.light_pipe, parts.body) < 1e-6
    assert _overlap(parts.light_pipe, parts.lid) < 1e-6
    led_top = p.pcb_top_z_mm + p.led_height_mm
    assert parts.light_pipe.bounding_box().min.Z - led_top == pytest.approx(p.light_pipe_gap_mm)


def test_the_250_mah_cell_variant_builds_and_fits():
    """The bill of materials' alternative cell (502030, 30 x 20 x 5 mm) with its --set values."""
    variant = build_parts(EnclosureParams(cell_length_mm=30.5, cell_width_mm=20.5,
                                          cell_thickness_mm=5.2))
    p = variant.params
    assert variant.body.is_valid and variant.lid.is_valid and variant.body.is_manifold
    shell = variant.body + variant.lid + variant.light_pipe
    assert _overlap(shell, variant.cell) < 1e-6 and _overlap(shell, variant.board) < 1e-6
    assert (p.outer_width_mm, p.outer_length_mm) == pytest.approx((25.1, 66.1))  # bom.md
    assert p.case_height_mm == pytest.approx(9.96)
    with pytest.raises(ValueError, match="screws"):
        EnclosureParams(screw_length_mm=10).check()


def _face_grid(lo, hi, n=6):
    return np.linspace(lo + 0.2, hi - 0.2, n)


def test_board_is_shut_in_except_through_the_usb_opening(parts, shell):
    p = parts.params
    bb = parts.board.bounding_box()
    xs, ys, zs = (_face_grid(bb.min.X, bb.max.X), _face_grid(bb.min.Y, bb.max.Y),
                  _face_grid(bb.min.Z, bb.max.Z))
    rays = []
    for y in ys:
        for z in zs:
            rays += [((bb.max.X, y, z), (1, 0, 0)), ((bb.min.X, y, z), (-1, 0, 0))]
    for x in xs:
        for y in ys:
            rays += [((x, y, bb.max.Z), (0, 0, 1)), ((x, y, bb.min.Z), (0, 0, -1))]
        for z in zs:
            rays.append(((x, bb.max.Y, z), (0, 1, 0)))
    open_rays = [r for r in rays if not ray_hits(shell, *r)]
    assert not open_rays, f"the board sees out of the case along {open_rays[:3]}"
    # Towards the USB end: blocked everywhere except where the connector's shell looks out.
    uw = p.usb_width_mm / 2 + p.usb_fit_mm
    z0, z1 = p.pcb_top_z_mm - p.usb_fit_mm, p.body_height_mm
    for x in xs:
        for z in zs:
            in_opening = -uw < x < uw and z0 < z < z1
            hit = ray_hits(shell, (x, bb.min.Y, z), (0, -1, 0))
            assert hit != in_opening, (x, z, "open" if not hit else "blocked")


def test_usb_opening_lines_up_with_the_connector(parts, shell):
    p = parts.params
    ub = parts.usb.bounding_box()
    y = ub.min.Y  # the connector's face
    cx, cz = (ub.min.X + ub.max.X) / 2, (ub.min.Z + ub.max.Z) / 2
    inset = 0.05
    clear = [(cx, cz), (ub.min.X + inset, ub.min.Z + inset), (ub.max.X - inset, ub.min.Z + inset),
             (ub.min.X + inset, ub.max.Z - inset), (ub.max.X - inset, ub.max.Z - inset)]
    for x, z in clear:
        assert not ray_hits(shell, (x, y, z), (0, -1, 0)), f"the opening blocks the plug at {x, z}"
    # Just beyond the opening's fit the wall (or the lid above it) closes in again: the opening
    # is centred on the connector and not larger than it needs to be.
    m = p.usb_fit_mm + 0.2
    for x, z in ((ub.min.X - m, cz), (ub.max.X + m, cz), (cx, ub.min.Z - m), (cx, ub.max.Z + m)):
        assert ray_hits(shell, (x, y, z), (0, -1, 0)), f"the wall is open at {x, z}"


def test_clip_takes_a_50_mm_belt_and_refuses_dimensions_that_would_not(parts):
    p = parts.params
    top = p.outer_length_mm - p.clip_root_mm
    belt = box(-p.outer_width_mm / 2 - 1, p.outer_width_mm / 2 + 1, top - p.belt_width_mm, top,
               -p.clip_gap_mm + 0.05, -0.05)
    assert _overlap(parts.body, belt) < 1e-6
    # the belt is held: the root closes the gap above it, the bump narrows it below
    assert ray_hits(parts.body, (0, top - 1, -p.clip_gap_mm / 2), (0, 1, 0))
    assert ray_hits(parts.body, (0, top - p.belt_width_mm, -p.clip_gap_mm + 0.3), (0, -1, 0))
    with pytest.raises(ValueError, match="belt"):
        EnclosureParams(belt_width_mm=60).check()
    with pytest.raises(ValueError, match="USB-C"):
        EnclosureParams(led_x_mm=3.0).check()


def test_axes_are_embossed_as_the_conventions_say(parts):
    """+x to the wearer's right, +y up (docs/conventions.md): arrow tips on those sides."""
    p = parts.params
    ox, oy, n = p.axes_origin_x_mm, p.axes_origin_y_mm, p.arrow_length_mm
    face_z = p.case_height_mm

    def marked(x: float, y: float) -> bool:
        return ray_hits(parts.lid, (x, y, face_z + 0.5 * p.mark_height_mm), (0, 0, 1))

    assert marked(ox + n - 0.6, oy), "no +x arrow tip to the right of the origin"
    assert marked(ox, oy + n - 0.6), "no +y arrow tip above the origin"
    assert marked(ox + n / 2, oy) and marked(ox, oy + n / 2)
    assert marked(ox, oy), "no 'out of the face' dot for +z at the origin"
    assert not marked(ox - 3, oy) and not marked(ox, oy - 3.5 * p.mark_stroke_mm)
    assert not marked(ox + n / 2, oy + n / 2)


def _stl_triangles(path: Path) -> np.ndarray:
    data = path.read_bytes()
    (count,) = struct.unpack_from("<I", data, 80)
    assert len(data) == 84 + 50 * count, "truncated binary STL"
    rec = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    return np.frombuffer(data, dtype=rec, count=count, offset=84)["v"].astype(np.float64)


def test_command_writes_files_that_reload(tmp_path, capsys, parts):
    assert main([str(tmp_path), "--drawing", str(tmp_path / "drawing.svg")]) == 0
    out = capsys.readouterr().out
    assert "outside: 24.35 x 61.60 x 9.96 mm" in out
    for name, part in parts.printed.items():
        tris = _stl_triangles(tmp_path / f"{name}.stl")
        assert f"{name}: volume" in out and f"{len(tris)} STL triangles" in out
        # watertight: every edge of the mesh belongs to exactly two triangles
        _, idx = np.unique(tris.reshape(-1, 3), axis=0, return_inverse=True)
        t = idx.reshape(-1, 3)
        edges = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
        _, uses = np.unique(edges, axis=0, return_counts=True)
        assert (uses == 2).all(), f"{name}.stl has {int((uses != 2).sum())} open edges"
        # the mesh encloses the solid's volume (divergence theorem)
        vol = np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum() / 6
        assert vol == pytest.approx(part.volume, rel=0.01)
        step = import_step(tmp_path / f"{name}.step")
        assert step.is_valid and step.volume == pytest.approx(part.volume, rel=1e-4)
    assembly = import_step(tmp_path / "assembly.step")
    assert len(assembly.solids()) == 5  # body, lid, light pipe, board and cell references
    assert (tmp_path / "drawing.svg").read_text() == drawing_svg(parts.params)


def test_bad_dimension_on_the_command_line_is_one_sentence(capsys):
    assert main(["--set", "wall_mm=thick"]) == 2
    assert main(["--set", "walls_mm=2"]) == 2
    assert main(["--set", "belt_width_mm=70"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "Traceback" not in "".join(lines)


def test_committed_drawing_is_current_and_names_the_parts():
    committed = (REPO / "hardware" / "drawing.svg").read_text(encoding="utf-8")
    assert committed == drawing_svg(EnclosureParams()), (
        "hardware/drawing.svg is stale: rewrite it with "
        "python -m hardware.enclosure --drawing hardware/drawing.svg")
    root = ET.fromstring(committed)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for word in ("BAT+", "BAT-", "USB-C", "RGB LED", "LiPo cell", "light pipe", "+x", "+y"):
        assert word in texts, word
