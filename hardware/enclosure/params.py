"""Every dimension of the belt-sensor enclosure, in one frozen dataclass with a named default.

Data enters as keyword overrides (`EnclosureParams(wall_mm=2.4)`, or `--set wall_mm=2.4` on the
command line) and leaves as attributes plus derived sizes (`outer_width_mm`, positions of the
board, the cell, the screws). `check()` refuses a combination that cannot be built or worn, with
one sentence saying which dimension to change.

Case frame (the same as the device frame of docs/conventions.md in the default mounting): x across
the face to the wearer's right, y up along the case, z out of the face (away from the body). The
origin is on the back surface of the body (the belt side), centred in x, at the bottom end (the
USB-C end) in y. All lengths are millimetres.

Part sizes: Seeed Studio XIAO nRF52840 Sense (102010469) 21 x 17.5 mm by Seeed's data (17.8 mm
in PCB footprints of the board, used here to be safe), about 3.5 mm thick and about 4.5 mm over
the USB-C shell; Adafruit 1317 LiPo 3.7 V 150 mAh, 26.0 x 19.75 x 3.8 mm. The BAT+/BAT- pads and
the USB-C shell's overhang come from a community PCB footprint of the board (pads 1.9 mm apart,
4.4 mm off the centre line on the D0-D6 side), not from Seeed. The RGB LED's position (beside the
USB-C connector) is not published at all: it is a parameter to check against the board in hand
(hardware/assembly.md, step 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class EnclosureParams:
    # --- the board: Seeed XIAO nRF52840 Sense, component side towards the face, USB-C down ---
    board_length_mm: float = 21.0          # PCB, along y
    board_width_mm: float = 17.8           # PCB, along x
    usb_overhang_mm: float = 0.35          # USB-C shell's front beyond the PCB's edge
    board_pcb_mm: float = 1.2              # PCB thickness
    board_parts_mm: float = 2.3            # tallest part above the PCB except USB-C (shield can)
    usb_width_mm: float = 8.94             # USB-C receptacle shell, across
    usb_height_mm: float = 3.26            # USB-C receptacle shell, above the PCB
    usb_depth_mm: float = 7.35             # USB-C receptacle, from its front face inwards
    led_x_mm: float = 6.3                  # RGB LED centre from the board's centre line (+x side)
    led_from_usb_edge_mm: float = 2.4      # RGB LED centre from the board's USB-C edge
    led_height_mm: float = 0.6             # LED package above the PCB
    bat_pad_x_mm: float = 4.45             # BAT+/BAT- pads (on the back) from the centre line, +x
    bat_plus_from_usb_edge_mm: float = 10.2  # BAT+ pad centre from the PCB's USB-C edge
    bat_minus_from_usb_edge_mm: float = 8.3  # BAT- pad centre from the PCB's USB-C edge
    # --- the cell: LiPo 3.7 V, 150-250 mAh (default Adafruit 1317, 150 mAh) ---
    cell_length_mm: float = 26.0
    cell_width_mm: float = 19.75
    cell_thickness_mm: float = 3.8
    # --- fits ---
    fit_mm: float = 0.3                    # gap around board and cell in their pockets
    usb_end_fit_mm: float = 0.2            # gap between the PCB's USB-C edge and the bottom wall
    usb_fit_mm: float = 0.3                # gap around the USB-C shell in its opening
    board_standoff_mm: float = 1.2         # room under the board for the BAT+/BAT- joints, wires
    ledge_width_mm: float = 1.0            # ledges the board's long edges rest on
    head_room_mm: float = 0.3              # gap between the tallest part and the lid
    # --- shell ---
    wall_mm: float = 2.0                   # side and bottom walls
    floor_mm: float = 2.0                  # back of the body (belt side)
    lid_mm: float = 2.0
    corner_radius_mm: float = 3.0          # outline corners, seen from the face
    usb_web_mm: float = 0.5                # wall left around the USB-C shell by the plug relief
    plug_relief_width_mm: float = 12.6     # USB-C plug overmould clearance, outside the wall
    plug_relief_height_mm: float = 6.8
    rib_mm: float = 5.0                    # rib between board and cell; holds the middle screw
    wire_notch_width_mm: float = 4.0       # passage in the rib for the two cell leads
    wire_notch_height_mm: float = 2.5
    wire_notch_x_mm: float = 5.0           # notch centre from the centre line (the pads' side)
    top_block_mm: float = 6.5              # solid top end; holds the top screw
    # --- screws: 2 x ISO 7049 ST2.2 x 6.5 pan head, self-tapping into the body ---
    screw_length_mm: float = 6.5           # under the head
    screw_pilot_mm: float = 1.8            # pilot hole in the body (PETG)
    screw_pilot_depth_mm: float = 6.0
    screw_clearance_mm: float = 2.4        # hole in the lid
    screw_head_mm: float = 4.4             # counterbore in the lid, diameter
    screw_head_depth_mm: float = 1.2
    # --- light pipe: clear PMMA rod pressed into the lid over the RGB LED ---
    light_pipe_mm: float = 3.0             # rod diameter
    light_pipe_fit_mm: float = 0.1         # hole is this much larger than the rod
    light_pipe_gap_mm: float = 0.3         # rod end to LED top
    # --- belt clip on the back: a tongue joined at the top, open at the bottom. It is as wide as
    #     the case, so the body prints on its long side with clip and case on the bed. ---
    belt_width_mm: float = 50.0            # widest belt it must take (40-50 mm belts)
    belt_thickness_mm: float = 4.0         # thickest belt it must take
    clip_gap_mm: float = 3.5               # gap between tongue and back: grips a 3.5-4 mm belt
    clip_thickness_mm: float = 2.4
    clip_root_mm: float = 6.0              # length of the block joining tongue and back
    clip_tip_mm: float = 1.0               # tongue ends this far above the bottom end
    clip_bump_mm: float = 0.8              # retaining bump at the tongue tip, into the gap
    clip_bump_length_mm: float = 3.0
    # --- axes embossed on the lid face ---
    mark_height_mm: float = 0.4
    mark_stroke_mm: float = 1.0
    arrow_length_mm: float = 10.0
    letter_mm: float = 4.0
    axes_origin_x_mm: float = -7.0         # where the three axes start, on the face
    axes_origin_y_mm: float = 37.0

    # ---------------- derived sizes ----------------
    @property
    def inner_width_mm(self) -> float:
        return max(self.board_width_mm, self.cell_width_mm) + 2 * self.fit_mm

    @property
    def outer_width_mm(self) -> float:
        return self.inner_width_mm + 2 * self.wall_mm

    @property
    def board_y0_mm(self) -> float:
        """y of the PCB's USB-C edge: it rests against the bottom wall (with usb_end_fit_mm)."""
        return self.wall_mm + self.usb_end_fit_mm

    @property
    def usb_face_y_mm(self) -> float:
        """y of the USB-C receptacle's front face: inside the wall's opening, where the plug
        reaches it."""
        return self.board_y0_mm - self.usb_overhang_mm

    @property
    def board_y1_mm(self) -> float:
        return self.board_y0_mm + self.board_length_mm

    @property
    def bat_pads_xy_mm(self) -> dict[str, tuple[float, float]]:
        return {"BAT+": (self.bat_pad_x_mm, self.board_y0_mm + self.bat_plus_from_usb_edge_mm),
                "BAT-": (self.bat_pad_x_mm, self.board_y0_mm + self.bat_minus_from_usb_edge_mm)}

    @property
    def rib_y0_mm(self) -> float:
        return self.board_y1_mm + self.fit_mm

    @property
    def rib_y1_mm(self) -> float:
        return self.rib_y0_mm + self.rib_mm

    @property
    def cell_y0_mm(self) -> float:
        return self.rib_y1_mm + self.fit_mm

    @property
    def cell_y1_mm(self) -> float:
        return self.cell_y0_mm + self.cell_length_mm

    @property
    def outer_length_mm(self) -> float:
        return self.cell_y1_mm + self.fit_mm + self.top_block_mm

    @property
    def board_z0_mm(self) -> float:
        """z of the board's underside (it rests on the ledges)."""
        return self.floor_mm + self.board_standoff_mm

    @property
    def pcb_top_z_mm(self) -> float:
        return self.board_z0_mm + self.board_pcb_mm

    @property
    def pocket_depth_mm(self) -> float:
        tallest = max(self.board_parts_mm, self.usb_height_mm, self.led_height_mm)
        board_stack = self.board_standoff_mm + self.board_pcb_mm + tallest
        return max(board_stack, self.cell_thickness_mm) + self.head_room_mm

    @property
    def body_height_mm(self) -> float:
        return self.floor_mm + self.pocket_depth_mm

    @property
    def case_height_mm(self) -> float:
        """Body plus lid: the shell's thickness without the clip and the embossed marks."""
        return self.body_height_mm + self.lid_mm

    @property
    def total_thickness_mm(self) -> float:
        """From the clip's outer face to the top of the embossed axes."""
        return self.clip_thickness_mm + self.clip_gap_mm + self.case_height_mm + self.mark_height_mm

    @property
    def usb_centre_z_mm(self) -> float:
        return self.pcb_top_z_mm + self.usb_height_mm / 2

    @property
    def led_xy_mm(self) -> tuple[float, float]:
        return (self.led_x_mm, self.board_y0_mm + self.led_from_usb_edge_mm)

    @property
    def screw_xy_mm(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Middle screw (in the rib) and top screw (in the top block)."""
        return ((0.0, (self.rib_y0_mm + self.rib_y1_mm) / 2),
                (0.0, self.outer_length_mm - self.top_block_mm / 2))

    @property
    def belt_room_mm(self) -> float:
        """Length of the clip's gap between its root and the retaining bump: the belt's room."""
        return (self.outer_length_mm - self.clip_root_mm
                - (self.clip_tip_mm + self.clip_bump_length_mm))

    @property
    def clip_strain(self) -> float:
        """Peak bending strain of the tongue when a belt of belt_thickness_mm passes the bump.

        Cantilever of length l (root to tip) deflected by d at the tip: strain = 1.5 t d / l^2.
        PETG yields at roughly 4 %, so anything under about 1 % is a spring that lasts."""
        length = self.outer_length_mm - self.clip_root_mm - self.clip_tip_mm
        d = self.belt_thickness_mm + self.clip_bump_mm - self.clip_gap_mm
        return max(0.0, 1.5 * self.clip_thickness_mm * d / length ** 2)

    @property
    def light_pipe_length_mm(self) -> float:
        """Rod length: from the lid's face down to just above the LED."""
        led_top = self.pcb_top_z_mm + self.led_height_mm
        return self.case_height_mm - (led_top + self.light_pipe_gap_mm)

    def check(self) -> None:
        """Raise ValueError (one sentence) if these dimensions cannot be built or worn."""
        for f in dataclasses.fields(self):
            if f.name.endswith(("_x_mm", "_y_mm")):
                continue  # positions, not sizes
            if getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must not be negative (it is {getattr(self, f.name)}).")
        if self.belt_room_mm < self.belt_width_mm:
            raise ValueError(
                f"The clip leaves {self.belt_room_mm:.1f} mm for the belt, less than belt_width_mm "
                f"= {self.belt_width_mm:g}: lengthen top_block_mm or shorten clip_root_mm.")
        if self.clip_strain > 0.01:
            raise ValueError(f"A {self.belt_thickness_mm:g} mm belt would bend the clip to "
                             f"{self.clip_strain:.1%} strain, too much for PETG: widen clip_gap_mm "
                             "or make clip_thickness_mm thinner.")
        pipe_r = (self.light_pipe_mm + self.light_pipe_fit_mm) / 2
        if abs(self.led_x_mm) - pipe_r < self.usb_width_mm / 2:
            raise ValueError("The light pipe over the LED would hit the USB-C connector: move "
                             "led_x_mm further from the centre line or use a thinner "
                             "light_pipe_mm.")
        if self.plug_relief_width_mm > self.inner_width_mm:
            raise ValueError(f"plug_relief_width_mm ({self.plug_relief_width_mm:g}) is wider than "
                             f"the pocket ({self.inner_width_mm:.2f} mm): the bottom wall would "
                             "open into the side walls.")
        if self.usb_web_mm >= self.wall_mm:
            raise ValueError("usb_web_mm must be thinner than wall_mm (the plug relief is the rest "
                             "of the wall).")
        if self.screw_pilot_depth_mm >= self.body_height_mm:
            raise ValueError("screw_pilot_depth_mm would go through the back of the body.")
        thread_in_body = self.screw_length_mm - (self.lid_mm - self.screw_head_depth_mm)
        if thread_in_body > self.screw_pilot_depth_mm:
            raise ValueError(f"The screws would reach {thread_in_body:.1f} mm into the body, "
                             f"deeper than the {self.screw_pilot_depth_mm:g} mm pilot holes: use "
                             "shorter screws or deeper holes.")
        if thread_in_body < 3.0:
            raise ValueError(f"The screws would hold only {thread_in_body:.1f} mm of thread in the "
                             "body: use longer screws.")
        if self.screw_head_depth_mm >= self.lid_mm:
            raise ValueError("screw_head_depth_mm must be less than lid_mm.")
        head_r = self.screw_head_mm / 2
        if self.top_block_mm / 2 - head_r < 0.5:
            raise ValueError("top_block_mm is too short for the top screw's head: make it at least "
                             f"{self.screw_head_mm + 1.0:.1f} mm.")
        if abs(self.wire_notch_x_mm) - self.wire_notch_width_mm / 2 < self.screw_pilot_mm / 2 + 0.5:
            raise ValueError("The wire notch would cut into the middle screw's hole: move "
                             "wire_notch_x_mm away from the centre line.")


def parse_overrides(items: list[str]) -> dict[str, float]:
    """`["wall_mm=2.4", ...]` -> `{"wall_mm": 2.4}`; ValueError naming the bad item."""
    names = {f.name for f in dataclasses.fields(EnclosureParams)}
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"'{item}' is not NAME=VALUE (e.g. wall_mm=2.4).")
        if name not in names:
            raise ValueError(f"'{name}' is not an enclosure dimension; "
                             "`python -m hardware.enclosure --list` shows them.")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"'{value}' for {name} is not a number of millimetres.") from None
    return out
