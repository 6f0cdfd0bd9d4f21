"""The physical belt sensor: firmware for the board (firmware/), the enclosure CAD (enclosure/),
the bill of materials and the assembly guide (bom.md, assembly.md)."""
