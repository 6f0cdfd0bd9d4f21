"""A photo-free assembly drawing (SVG) of the sensor, computed from the same EnclosureParams.

Data enters as an `EnclosureParams`; `drawing_svg(p)` returns the SVG text: the open body seen from
the face (board, USB-C, RGB LED under the light pipe, cell, the red and black leads from the cell
through the rib's notch to the BAT+/BAT- pads on the board's back, screws, axes) and a section seen
from the wearer's left (back, clip and belt, board, cell, lid, light pipe). hardware/drawing.svg is
this output for the default dimensions (`python -m hardware.enclosure --drawing
hardware/drawing.svg` rewrites it; a test checks it is current). Plain SVG written here: a library
would add nothing to rectangles, lines and labels.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from hardware.enclosure.params import EnclosureParams

SCALE_PX_PER_MM = 6.0
_BOARD, _CELL, _USB, _WALL = "#2e7d32", "#1565c0", "#616161", "#212121"
_RED, _BLACK, _PIPE = "#d32f2f", "#000000", "#ff8f00"


class _Svg:
    def __init__(self) -> None:
        self.items: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, stroke: str, fill: str = "none",
             rx: float = 0.0, dash: bool = False, width: float = 0.25) -> None:
        d = ' stroke-dasharray="1,0.7"' if dash else ""
        self.items.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" '
                          f'rx="{rx:.2f}" fill="{fill}" stroke="{stroke}" '
                          f'stroke-width="{width}"{d}/>')

    def circle(self, cx: float, cy: float, r: float, stroke: str, fill: str = "none") -> None:
        self.items.append(f'<circle cx="{cx:.2f}" cy="{cy:.2f}" r="{r:.2f}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="0.25"/>')

    def path(self, pts: list[tuple[float, float]], stroke: str, width: float = 0.25,
             dash: bool = False, arrow: bool = False) -> None:
        d = "M " + " L ".join(f"{x:.2f},{y:.2f}" for x, y in pts)
        extra = (' stroke-dasharray="1,0.7"' if dash else "") + (
            ' marker-end="url(#arrow)"' if arrow else "")
        self.items.append(f'<path d="{d}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{width}"{extra}/>')

    def text(self, x: float, y: float, s: str, size: float = 2.2, anchor: str = "start",
             weight: str = "normal", fill: str = "#000") -> None:
        self.items.append(f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" '
                          f'font-family="sans-serif" text-anchor="{anchor}" '
                          f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')

    def label(self, x: float, y: float, tx: float, ty: float, s: str) -> None:
        """A leader line from a part (x, y) to its label at (tx, ty)."""
        self.path([(tx, ty - 0.7), (x, y)], "#555", 0.15)
        self.text(tx, ty, s, anchor="end" if tx < x else "start")


def drawing_svg(p: EnclosureParams | None = None) -> str:
    p = p or EnclosureParams()
    p.check()
    W, L = p.outer_width_mm, p.outer_length_mm
    margin, gap = 48.0, 75.0
    width_mm = margin + W + gap + (p.case_height_mm + p.clip_gap_mm + p.clip_thickness_mm) + 60
    height_mm = L + 40.0
    s = _Svg()

    # ---- view A: open body seen from the face; case x -> right, case y -> up ----
    ax0, ay0 = margin + W / 2, 22.0 + L  # SVG position of the case origin

    def A(x: float, y: float) -> tuple[float, float]:
        return ax0 + x, ay0 - y

    def rectA(x0: float, y0: float, x1: float, y1: float, **kw: object) -> None:
        sx, sy = A(x0, y1)
        s.rect(sx, sy, x1 - x0, y1 - y0, **kw)  # type: ignore[arg-type]

    s.text(ax0, 8, "Inside, lid off, seen from the face", 3.0, "middle", "bold")
    s.text(ax0, 12.5, "(as worn: wearer's right is to the right, up is up)", 2.2, "middle")
    rectA(-W / 2, 0, W / 2, L, stroke=_WALL, rx=p.corner_radius_mm, width=0.5)
    bw = p.board_width_mm / 2 + p.fit_mm
    iw = p.inner_width_mm / 2
    rectA(-bw, p.wall_mm, bw, p.rib_y0_mm, stroke=_WALL)
    rectA(-iw, p.rib_y1_mm, iw, p.cell_y1_mm + p.fit_mm, stroke=_WALL)
    nx, nw = p.wire_notch_x_mm, p.wire_notch_width_mm
    rectA(nx - nw / 2, p.rib_y0_mm, nx + nw / 2, p.rib_y1_mm, stroke=_WALL, dash=True)
    for x, y in p.screw_xy_mm:
        s.circle(*A(x, y), p.screw_pilot_mm / 2, _WALL)
        s.circle(*A(x, y), p.screw_head_mm / 2, "#9e9e9e")
    uw = p.usb_width_mm / 2 + p.usb_fit_mm
    rectA(-uw, 0, uw, p.wall_mm, stroke=_WALL, fill="#eeeeee")
    # board, connector, LED
    hb = p.board_width_mm / 2
    rectA(-hb, p.board_y0_mm, hb, p.board_y1_mm, stroke=_BOARD, fill="#e8f5e9", width=0.4)
    rectA(-p.usb_width_mm / 2, p.usb_face_y_mm, p.usb_width_mm / 2,
          p.usb_face_y_mm + p.usb_depth_mm, stroke=_USB, fill="#e0e0e0")
    lx, ly = p.led_xy_mm
    s.circle(*A(lx, ly), p.light_pipe_mm / 2, _PIPE)
    s.circle(*A(lx, ly), 0.8, _RED, "#ffcdd2")
    # BAT pads on the back of the board (dashed: seen through the board)
    pads = p.bat_pads_xy_mm
    for (x, y) in pads.values():
        rectA(x - 0.7, y - 0.7, x + 0.7, y + 0.7, stroke=_BOARD, dash=True)
    # cell with its leads leaving the protection-circuit end (towards the board)
    hc = p.cell_width_mm / 2
    rectA(-hc, p.cell_y0_mm, hc, p.cell_y1_mm, stroke=_CELL, fill="#e3f2fd", width=0.4)
    rectA(-hc, p.cell_y0_mm, hc, p.cell_y0_mm + 3.0, stroke=_CELL, dash=True)
    # Leads leave the cell side by side, pass the notch and end on their pads (BAT- is nearer
    # the USB-C end, so its lead runs on past BAT+).
    for name, col, lane in (("BAT+", _RED, nx - 0.8), ("BAT-", _BLACK, nx + 0.8)):
        x, y = pads[name]
        route = [A(lane, p.cell_y0_mm + 1.5), A(lane, p.rib_y0_mm - 0.5),
                 A(lane, y + 0.8 if name == "BAT+" else y), A(x, y)]
        s.path(route, col, 0.45)
    s.text(*A(0, (p.cell_y0_mm + p.cell_y1_mm) / 2 + 1.5), "LiPo cell", 2.6, "middle")
    s.text(*A(0, (p.cell_y0_mm + p.cell_y1_mm) / 2 - 2.0),
           f"{p.cell_length_mm:g} x {p.cell_width_mm:g} x {p.cell_thickness_mm:g}", 2.0,
           "middle")
    # labels, left and right of the case
    left, right = ax0 - W / 2 - 3, ax0 + W / 2 + 3
    board_mid = (p.board_y0_mm + p.board_y1_mm) / 2
    s.label(*A(-hb + 1.5, board_mid), left, A(0, board_mid + 1)[1], "XIAO nRF52840 Sense,")
    s.text(left, A(0, board_mid - 2)[1], "component side up", anchor="end")
    s.label(*A(lx, ly), right, A(0, ly)[1] + 1, "RGB LED, light pipe above")
    s.label(*A(0, 0.5), right, A(0, -3)[1], "USB-C opening")
    s.label(*A(*pads["BAT+"]), right, A(0, pads["BAT+"][1] + 2)[1], "BAT+ (red), on the back")
    s.label(*A(*pads["BAT-"]), right, A(0, pads["BAT-"][1] - 1.5)[1], "BAT- (black), on the back")
    s.label(*A(nx, (p.rib_y0_mm + p.rib_y1_mm) / 2), right,
            A(0, (p.rib_y0_mm + p.rib_y1_mm) / 2)[1], "leads through the rib's notch")
    s.label(*A(-hc + 1, p.cell_y0_mm + 1.5), left, A(0, p.cell_y0_mm + 4)[1],
            "cell's leads end (protection circuit)")
    x0, y0 = p.screw_xy_mm[1]
    s.label(*A(x0 + p.screw_head_mm / 2, y0), right, A(0, y0 + 2)[1],
            f"screw ST2.2 x {p.screw_length_mm:g}")
    s.label(*A(iw, p.cell_y1_mm - 4), right, A(0, p.cell_y1_mm - 6)[1],
            "foam tape under the cell")
    # axes as printed on the lid
    ox, oy = A(-W / 2 - 16, L - 14)
    s.path([(ox, oy), (ox + 8, oy)], _BLACK, 0.4, arrow=True)
    s.path([(ox, oy), (ox, oy - 8)], _BLACK, 0.4, arrow=True)
    s.circle(ox, oy, 1.0, _BLACK)
    s.circle(ox, oy, 0.3, _BLACK, _BLACK)
    s.text(ox + 9, oy + 0.8, "+x", 2.2)
    s.text(ox - 1.2, oy - 9, "+y", 2.2)
    s.text(ox - 2, oy + 3.5, "+z out of the face", 2.0)
    # overall sizes
    s.text(ax0, ay0 + 6, f"{W:.1f} mm wide, {L:.1f} mm tall", 2.2, "middle")

    # ---- view B: section seen from the wearer's left; case z -> right, case y -> up ----
    bx0 = margin + W + gap + p.clip_gap_mm + p.clip_thickness_mm
    by0 = ay0

    def B(z: float, y: float) -> tuple[float, float]:
        return bx0 + z, by0 - y

    def rectB(z0: float, y0: float, z1: float, y1: float, **kw: object) -> None:
        sx, sy = B(z0, y1)
        s.rect(sx, sy, z1 - z0, y1 - y0, **kw)  # type: ignore[arg-type]

    s.text(bx0 + 4, 8, "Section, seen from the wearer's left", 3.0, "middle", "bold")
    s.text(bx0 + 4, 12.5, "(belt side left, face right)", 2.2, "middle")
    H, top = p.case_height_mm, p.body_height_mm
    rectB(0, 0, p.floor_mm, L, stroke=_WALL, fill="#f5f5f5")               # back
    rectB(0, 0, top, p.wall_mm, stroke=_WALL, fill="#f5f5f5")              # bottom wall
    rectB(0, L - p.top_block_mm, top, L, stroke=_WALL, fill="#f5f5f5")     # top block
    rectB(p.floor_mm, p.rib_y0_mm, top, p.rib_y1_mm, stroke=_WALL, fill="#f5f5f5")  # rib
    rectB(top, 0, H, L, stroke=_WALL, fill="#fafafa")                      # lid
    rectB(-p.clip_gap_mm, L - p.clip_root_mm, 0, L, stroke=_WALL, fill="#f5f5f5")
    rectB(-p.clip_gap_mm - p.clip_thickness_mm, p.clip_tip_mm, -p.clip_gap_mm, L, stroke=_WALL,
          fill="#f5f5f5")
    # belt in the gap
    belt_y1 = L - p.clip_root_mm
    rectB(-p.clip_gap_mm + 0.2, belt_y1 - p.belt_width_mm, -0.2, belt_y1, stroke="#8d6e63",
          fill="#d7ccc8")
    s.text(*B(-p.clip_gap_mm - p.clip_thickness_mm - 2, belt_y1 - p.belt_width_mm / 2),
           f"belt up to {p.belt_width_mm:g} mm", 2.2, "end")
    s.text(*B(-p.clip_gap_mm - p.clip_thickness_mm - 2, belt_y1 - p.belt_width_mm / 2 - 3),
           "clip against the body", 2.0, "end")
    # board stack and cell
    rectB(p.board_z0_mm, p.board_y0_mm, p.pcb_top_z_mm, p.board_y1_mm, stroke=_BOARD,
          fill="#e8f5e9")
    rectB(p.pcb_top_z_mm, p.usb_face_y_mm, p.pcb_top_z_mm + p.usb_height_mm,
          p.usb_face_y_mm + p.usb_depth_mm, stroke=_USB, fill="#e0e0e0")
    rectB(p.floor_mm, p.cell_y0_mm, p.floor_mm + p.cell_thickness_mm, p.cell_y1_mm,
          stroke=_CELL, fill="#e3f2fd")
    pipe_z0 = H - p.light_pipe_length_mm
    rectB(pipe_z0, ly - p.light_pipe_mm / 2, H, ly + p.light_pipe_mm / 2, stroke=_PIPE,
          fill="#ffe0b2")
    s.path([B(p.board_z0_mm - 0.4, p.board_y1_mm - 4), B(p.board_z0_mm - 0.4, p.rib_y0_mm),
            B(p.floor_mm + 0.8, p.rib_y1_mm + 0.3), B(p.floor_mm + 0.8, p.cell_y0_mm + 1)],
           _RED, 0.45)
    rlab = bx0 + H + 4
    s.label(*B(H - 0.5, ly), rlab, B(0, ly - 1)[1], "light pipe (3 mm PMMA rod)")
    s.label(*B(p.pcb_top_z_mm + 1, p.board_y0_mm + 3), rlab, B(0, p.board_y0_mm + 6)[1],
            "USB-C")
    s.label(*B(p.board_z0_mm + 0.6, 15), rlab, B(0, 15)[1], "board on its ledges")
    s.label(*B(p.floor_mm + 2, p.cell_y0_mm + 12), rlab, B(0, p.cell_y0_mm + 12)[1], "cell")
    s.label(*B(top + 1, L - 14), rlab, B(0, L - 14)[1], "lid, axes embossed")
    s.text(bx0 + H / 2, by0 + 6, f"{H:.1f} mm + clip {p.clip_gap_mm + p.clip_thickness_mm:.1f}",
           2.2, "middle")

    body = "\n".join(s.items)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_mm * SCALE_PX_PER_MM:.0f}" '
            f'height="{height_mm * SCALE_PX_PER_MM:.0f}" '
            f'viewBox="0 0 {width_mm:.2f} {height_mm:.2f}">\n'
            '<title>hiplevel belt sensor: parts, wiring and where the cell goes</title>\n'
            '<defs><marker id="arrow" viewBox="0 0 6 6" refX="5" refY="3" markerWidth="4" '
            'markerHeight="4" orient="auto"><path d="M0,0 L6,3 L0,6 z"/></marker></defs>\n'
            f'<rect width="{width_mm:.2f}" height="{height_mm:.2f}" fill="white"/>\n'
            f"{body}\n</svg>\n")
