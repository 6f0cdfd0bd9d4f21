"""What the windows share: the colour palette, fonts, legend swatches and the frame every main
window starts from. Qt only; no data flows through here.
"""
from __future__ import annotations

from PySide6 import QtGui, QtWidgets

# Blue vs orange stays distinct with the common colour-vision deficiencies; the limits are also told
# apart by being straight, labelled lines.
COLORS = {
    "background": "#ffffff",
    "axis": "#343a40",
    "curve": "#1c5aa8",      # obliquity
    "cue": "#f08c00",        # obliquity while the cue sounds
    "limit": "#c2255c",      # drop thresholds
    "level": "#868e96",      # 0 deg
    "tilt": "#2f9e44",       # forward tilt
    "text": "#212529",
    "muted_text": "#868e96",
    "warn_bg": "#ffd43b",
    "bad_bg": "#e03131",
}


def font(point_size: int, bold: bool = False) -> QtGui.QFont:
    f = QtGui.QFont()
    f.setPointSize(point_size)
    f.setBold(bold)
    return f


def swatch(color: str, text: str, dashed: bool = False) -> str:
    line = "╌╌" if dashed else "━━"
    return f'<span style="color:{color}; font-weight:bold">{line}</span>&nbsp;{text}'


def window_frame(window: QtWidgets.QMainWindow, title: str, width: int, height: int) -> QtWidgets.QVBoxLayout:
    """Title, size and a central widget with the windows' margins; returns its vertical layout."""
    window.setWindowTitle(title)
    window.resize(width, height)
    central = QtWidgets.QWidget()
    window.setCentralWidget(central)
    root = QtWidgets.QVBoxLayout(central)
    root.setContentsMargins(12, 8, 12, 8)
    root.setSpacing(6)
    return root


def fixed_plot(plot_widget) -> object:
    """The plot item of a pyqtgraph PlotWidget that the user cannot pan, zoom or open a menu on
    (a patient's click must not move the view)."""
    item = plot_widget.getPlotItem()
    item.setMouseEnabled(x=False, y=False)
    item.setMenuEnabled(False)
    item.hideButtons()
    return item


def section(caption: str, stretch: int = 0) -> tuple[QtWidgets.QWidget, QtWidgets.QVBoxLayout, QtWidgets.QHBoxLayout]:
    """A widget with a bold caption row on top: (widget, its column, the caption row to add to;
    the caller adds the row to the column once it has put its controls beside the caption)."""
    box = QtWidgets.QWidget()
    col = QtWidgets.QVBoxLayout(box)
    col.setContentsMargins(0, 0, 0, 0)
    head = QtWidgets.QHBoxLayout()
    label = QtWidgets.QLabel(caption)
    label.setFont(font(13, bold=True))
    head.addWidget(label, stretch=stretch)
    return box, col, head
