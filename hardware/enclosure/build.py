"""Builds the enclosure's solids from EnclosureParams with build123d.

Data enters as an `EnclosureParams`; `build_parts(p)` returns an `EnclosureParts`: the two printed
parts (`body` with its belt clip, `lid` with the embossed axes), the light-pipe rod, and reference
volumes of the board and the cell at their places (used by the drawing and the tests, exported in
the assembly STEP, never printed). `export_parts` writes STL (print) and STEP (edit) files.

Layout (frame in params.py): the board lies at the bottom, component side towards the face, its
USB-C connector through the bottom wall; a rib with the middle screw and a notch for the cell
leads separates it from the cell above; the top block holds the second screw; the clip's root is
at the top of the back so the device is pushed down over the belt. The body prints on its long
side without supports (the side wall over each pocket is a short bridge; the clip then bends
along its layers, not between them); the lid prints face up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from build123d import (Axis, Box, Circle, Compound, Cylinder, Part, Plane, Polygon, Pos,
                       Rectangle, RectangleRounded, Rot, Sketch, Vector, export_step,
                       export_stl, extrude)

from hardware.enclosure.params import EnclosureParams

_EPS = 0.01  # overlap so that cuts go cleanly through faces they share


@dataclass
class EnclosureParts:
    params: EnclosureParams
    body: Part
    lid: Part
    light_pipe: Part
    board: Part          # reference: PCB, shield can, LED, USB-C receptacle
    usb: Part            # reference: the USB-C receptacle alone
    cell: Part           # reference: the LiPo cell
    build_s: float

    @property
    def printed(self) -> dict[str, Part]:
        return {"body": self.body, "lid": self.lid}


def box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> Part:
    """An axis-aligned box between two corners (build123d boxes are centred)."""
    return Pos((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2) * Box(x1 - x0, y1 - y0, z1 - z0)


def _cylinder(x: float, y: float, z0: float, z1: float, d: float) -> Part:
    return Pos(x, y, (z0 + z1) / 2) * Cylinder(d / 2, z1 - z0)


def _outline(p: EnclosureParams, z0: float, z1: float) -> Part:
    face = RectangleRounded(p.outer_width_mm, p.outer_length_mm, p.corner_radius_mm)
    return Pos(0, p.outer_length_mm / 2, z0) * extrude(face, z1 - z0)


def _plug_relief(p: EnclosureParams) -> Part:
    """Room outside the bottom wall for the USB-C plug's overmould, so the plug seats fully."""
    zc = p.usb_centre_z_mm
    return box(-p.plug_relief_width_mm / 2, p.plug_relief_width_mm / 2, -1.0,
               p.wall_mm - p.usb_web_mm, zc - p.plug_relief_height_mm / 2,
               zc + p.plug_relief_height_mm / 2)


def board_reference(p: EnclosureParams) -> tuple[Part, Part]:
    """The XIAO's envelope at its place (PCB, shield can, LED, USB-C) and its USB-C alone."""
    hw = p.board_width_mm / 2
    pcb = box(-hw, hw, p.board_y0_mm, p.board_y1_mm, p.board_z0_mm, p.pcb_top_z_mm)
    # The shield can covers the middle of the board; the USB-C end carries the connector, the
    # reset button and the LEDs, which is why the light pipe can reach the LED there.
    usb_zone = p.led_from_usb_edge_mm + p.light_pipe_mm / 2 + 0.5
    shield = box(-hw + 1.0, hw - 1.0, p.board_y0_mm + usb_zone, p.board_y1_mm - 1.0,
                 p.pcb_top_z_mm, p.pcb_top_z_mm + p.board_parts_mm)
    lx, ly = p.led_xy_mm
    led = box(lx - 0.8, lx + 0.8, ly - 0.8, ly + 0.8, p.pcb_top_z_mm,
              p.pcb_top_z_mm + p.led_height_mm)
    usb = box(-p.usb_width_mm / 2, p.usb_width_mm / 2, p.usb_face_y_mm,
              p.usb_face_y_mm + p.usb_depth_mm, p.pcb_top_z_mm, p.pcb_top_z_mm + p.usb_height_mm)
    return pcb + shield + led + usb, usb


def cell_reference(p: EnclosureParams) -> Part:
    hw = p.cell_width_mm / 2
    return box(-hw, hw, p.cell_y0_mm, p.cell_y1_mm, p.floor_mm,
               p.floor_mm + p.cell_thickness_mm)


def _body(p: EnclosureParams) -> Part:
    top = p.body_height_mm
    body = _outline(p, 0.0, top)
    board_hw = p.board_width_mm / 2 + p.fit_mm
    inner_hw = p.inner_width_mm / 2
    # Board pocket above the ledges, and a channel under the board for the BAT+/BAT- joints and
    # the leads, running to the notch in the rib.
    body -= box(-board_hw, board_hw, p.wall_mm, p.rib_y0_mm, p.board_z0_mm, top + _EPS)
    channel_hw = p.board_width_mm / 2 - p.ledge_width_mm
    body -= box(-channel_hw, channel_hw, p.wall_mm, p.rib_y0_mm + _EPS, p.floor_mm,
                p.board_z0_mm + _EPS)
    nx, nw = p.wire_notch_x_mm, p.wire_notch_width_mm
    body -= box(nx - nw / 2, nx + nw / 2, p.rib_y0_mm - _EPS, p.rib_y1_mm + _EPS, p.floor_mm,
                p.floor_mm + p.wire_notch_height_mm)
    body -= box(-inner_hw, inner_hw, p.rib_y1_mm, p.cell_y1_mm + p.fit_mm, p.floor_mm,
                top + _EPS)
    # USB-C opening: open towards the lid so the board drops in with its connector in place.
    uw = p.usb_width_mm / 2 + p.usb_fit_mm
    body -= box(-uw, uw, -1.0, p.wall_mm + _EPS, p.pcb_top_z_mm - p.usb_fit_mm, top + 1.0)
    body -= _plug_relief(p)
    for x, y in p.screw_xy_mm:
        body -= _cylinder(x, y, top - p.screw_pilot_depth_mm, top + 1.0, p.screw_pilot_mm)
    return body + _clip(p)


def _clip(p: EnclosureParams) -> Part:
    """Tongue behind the belt, joined to the back at the top, with a ramped retaining bump.

    As wide as the case and cut to the same rounded outline, so that printed on its long side the
    clip lies on the bed with the case (no supports, and the tongue bends along its layers)."""
    L, w = p.outer_length_mm, p.outer_width_mm / 2 + 1.0
    gap = p.clip_gap_mm
    root = box(-w, w, L - p.clip_root_mm, L, -gap - _EPS, _EPS)
    tongue = box(-w, w, p.clip_tip_mm, L, -gap - p.clip_thickness_mm, -gap)
    # Bump profile in the y-z plane: a long ramp facing the bottom (the belt enters from there)
    # and a steep face towards the belt once it is in.
    y0, bl, bh = p.clip_tip_mm, p.clip_bump_length_mm, p.clip_bump_mm
    profile = Polygon((y0, -gap - _EPS), (y0 + bl, -gap - _EPS), (y0 + 0.75 * bl, -gap + bh),
                      (y0 + 0.6 * bl, -gap + bh), align=None)
    bump = extrude(Plane.YZ.offset(-w) * profile, 2 * w)
    return (root + tongue + bump) & _outline(p, -gap - p.clip_thickness_mm - 1.0, 1.0)


def _stroke(a: tuple[float, float], b: tuple[float, float], w: float) -> Sketch:
    (ax, ay), (bx, by) = a, b
    v = Vector(bx - ax, by - ay, 0)
    angle = Vector(1, 0, 0).get_signed_angle(v, Vector(0, 0, 1))
    return Pos((ax + bx) / 2, (ay + by) / 2) * Rot(0, 0, angle) * Rectangle(v.length + w, w)


def _letter(ch: str, cx: float, cy: float, h: float, w: float) -> Sketch:
    s = h / 2 - w / 2
    q = s * 0.75  # letters a little narrower than tall
    strokes = {
        "X": [((-q, -s), (q, s)), ((-q, s), (q, -s))],
        "Y": [((-q, s), (0, 0)), ((q, s), (0, 0)), ((0, 0), (0, -s))],
        "Z": [((-q, s), (q, s)), ((q, s), (-q, -s)), ((-q, -s), (q, -s))],
    }[ch]
    sk = None
    for a, b in strokes:
        st = _stroke((cx + a[0], cy + a[1]), (cx + b[0], cy + b[1]), w)
        sk = st if sk is None else sk + st
    return sk


def axes_marks_sketch(p: EnclosureParams) -> Sketch:
    """+x arrow to the right, +y arrow up, z as 'out of the face' (a circled dot), with letters."""
    ox, oy, n, w, h = (p.axes_origin_x_mm, p.axes_origin_y_mm, p.arrow_length_mm,
                       p.mark_stroke_mm, p.letter_mm)
    head = 2.2 * w
    ring_r = 1.9 * w
    sk = _stroke((ox + ring_r, oy), (ox + n - head, oy), w)
    sk += Polygon((ox + n, oy), (ox + n - 2 * head, oy + head), (ox + n - 2 * head, oy - head),
                  align=None)
    sk += _stroke((ox, oy + ring_r), (ox, oy + n - head), w)
    sk += Polygon((ox, oy + n), (ox - head, oy + n - 2 * head), (ox + head, oy + n - 2 * head),
                  align=None)
    sk += Pos(ox, oy) * (Circle(ring_r) - Circle(ring_r - 0.8 * w))
    sk += Pos(ox, oy) * Circle(0.6 * w)
    sk += _letter("X", ox + n + 0.9 * h, oy, h, w)
    sk += _letter("Y", ox, oy + n + 0.9 * h, h, w)
    sk += _letter("Z", ox + 0.9 * h, oy - 1.1 * h, h, w)
    return sk


def _lid(p: EnclosureParams) -> Part:
    z0, z1 = p.body_height_mm, p.case_height_mm
    lid = _outline(p, z0, z1)
    for x, y in p.screw_xy_mm:
        lid -= _cylinder(x, y, z0 - 1.0, z1 + 1.0, p.screw_clearance_mm)
        lid -= _cylinder(x, y, z1 - p.screw_head_depth_mm, z1 + 1.0, p.screw_head_mm)
    lx, ly = p.led_xy_mm
    lid -= _cylinder(lx, ly, z0 - 1.0, z1 + 1.0, p.light_pipe_mm + p.light_pipe_fit_mm)
    lid -= _plug_relief(p)
    lid += Pos(0, 0, z1 - _EPS) * extrude(axes_marks_sketch(p), p.mark_height_mm + _EPS)
    return lid


def build_parts(p: EnclosureParams | None = None) -> EnclosureParts:
    """All solids for these dimensions (raises ValueError from p.check() first)."""
    p = p or EnclosureParams()
    p.check()
    t0 = time.perf_counter()
    body, lid = _body(p), _lid(p)
    lx, ly = p.led_xy_mm
    pipe = _cylinder(lx, ly, p.case_height_mm - p.light_pipe_length_mm, p.case_height_mm,
                     p.light_pipe_mm)
    board, usb = board_reference(p)
    cell = cell_reference(p)
    return EnclosureParts(p, body, lid, pipe, board, usb, cell, time.perf_counter() - t0)


def export_parts(parts: EnclosureParts, out_dir: Path) -> dict[str, Path]:
    """body.stl, lid.stl (to print), body.step, lid.step, assembly.step (with board, cell).

    Raises OSError when a file cannot be written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, part in parts.printed.items():
        # 0.02 mm chord error: finer than a 0.4 mm nozzle prints, small files.
        ok = export_stl(part, out_dir / f"{name}.stl", tolerance=0.02, angular_tolerance=0.2)
        ok = export_step(part, out_dir / f"{name}.step") and ok
        if not ok:
            raise OSError(f"OpenCascade could not write {name}.stl/.step in {out_dir}")
        written[f"{name}.stl"] = out_dir / f"{name}.stl"
        written[f"{name}.step"] = out_dir / f"{name}.step"
    labelled = []
    for name, part in (("body", parts.body), ("lid", parts.lid), ("light_pipe", parts.light_pipe),
                       ("board_reference", parts.board), ("cell_reference", parts.cell)):
        part.label = name
        labelled.append(part)
    assembly = Compound(label="hiplevel_sensor", children=labelled)
    if not export_step(assembly, out_dir / "assembly.step"):
        raise OSError(f"OpenCascade could not write assembly.step in {out_dir}")
    written["assembly.step"] = out_dir / "assembly.step"
    return written


def ray_hits(shape: Part, origin: tuple[float, float, float],
             direction: tuple[float, float, float]) -> bool:
    """Does a ray from `origin` along `direction` cross `shape`'s surface (ahead, not behind)?"""
    o, d = Vector(*origin), Vector(*direction).normalized()
    return any((pt - o).dot(d) > 1e-6 for pt, _ in shape.find_intersection_points(Axis(o, d)))
