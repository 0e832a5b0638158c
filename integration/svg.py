"""Small hand-written SVG helpers for the HTML report (:mod:`integration.html_report`).

Just enough for line charts over time with shaded windows and a log-x histogram: a
:class:`Frame` maps data to pixels, the helpers return SVG fragments as strings. Every text put
into the markup goes through :func:`esc`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Frame",
    "axes",
    "document",
    "esc",
    "legend",
    "linear_ticks",
    "log_ticks",
    "polyline",
    "vline",
    "window",
]

Format = Callable[[float], str]


def esc(text: object) -> str:
    """``text`` escaped for HTML/SVG text and attribute values."""
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Frame:
    """A plot area: ``[x0, x1] x [y0, y1]`` in data units drawn inside the margins."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 860
    height: int = 280
    left: int = 60
    right: int = 20
    top: int = 44
    bottom: int = 42
    log_x: bool = False

    def x(self, value: float) -> float:
        if self.log_x:
            lo, hi, v = math.log10(self.x0), math.log10(self.x1), math.log10(max(value, self.x0))
        else:
            lo, hi, v = self.x0, self.x1, value
        span = (hi - lo) or 1.0
        return self.left + (v - lo) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        bottom = self.height - self.bottom
        return bottom - (value - self.y0) / span * (bottom - self.top)

    @property
    def plot_top(self) -> float:
        return float(self.top)

    @property
    def plot_bottom(self) -> float:
        return float(self.height - self.bottom)


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks: list[float] = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between ``lo`` and ``hi`` (both > 0)."""
    ticks: list[float] = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo <= value <= hi:
                ticks.append(value)
    return ticks


def axes(
    frame: Frame,
    xticks: Sequence[float],
    yticks: Sequence[float],
    xfmt: Format,
    yfmt: Format,
    xlabel: str,
    ylabel: str,
) -> list[str]:
    """Grid lines, tick labels and axis titles."""
    out: list[str] = []
    left, right = frame.left, frame.width - frame.right
    for tick in yticks:
        y = _num(frame.y(tick))
        out.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{y}" y2="{y}"/>')
        out.append(
            f'<text class="tick" x="{left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{esc(yfmt(tick))}</text>'
        )
    for tick in xticks:
        x = _num(frame.x(tick))
        out.append(
            f'<line class="grid" x1="{x}" x2="{x}" y1="{_num(frame.plot_top)}" '
            f'y2="{_num(frame.plot_bottom)}"/>'
        )
        out.append(
            f'<text class="tick" x="{x}" y="{_num(frame.plot_bottom + 14)}" '
            f'text-anchor="middle">{esc(xfmt(tick))}</text>'
        )
    out.append(
        f'<rect class="frame" x="{left}" y="{frame.top}" width="{right - left}" '
        f'height="{_num(frame.plot_bottom - frame.plot_top)}"/>'
    )
    out.append(
        f'<text class="axis" x="{_num((left + right) / 2)}" y="{frame.height - 6}" '
        f'text-anchor="middle">{esc(xlabel)}</text>'
    )
    mid = _num((frame.plot_top + frame.plot_bottom) / 2)
    out.append(
        f'<text class="axis" x="14" y="{mid}" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid})">{esc(ylabel)}</text>'
    )
    return out


def polyline(frame: Frame, points: Sequence[tuple[float, float | None]], color: str) -> str:
    """A line through ``points``; a ``None`` value breaks it."""
    runs: list[list[str]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{_num(frame.x(x))},{_num(frame.y(y))}")
    return "".join(
        f'<polyline fill="none" stroke="{esc(color)}" stroke-width="1.6" points="{" ".join(run)}"/>'
        for run in runs
        if run
    )


def window(frame: Frame, start: float, end: float, label: str, row: int) -> str:
    """A shaded vertical band ``[start, end]`` labelled above the plot (``row`` staggers)."""
    x0 = max(frame.x(start), frame.left)
    x1 = min(max(frame.x(end), x0 + 2), frame.width - frame.right)
    y_text = frame.top - 6 - 12 * row
    return (
        f'<g class="fault"><rect x="{_num(x0)}" y="{_num(frame.plot_top)}" '
        f'width="{_num(x1 - x0)}" height="{_num(frame.plot_bottom - frame.plot_top)}"/>'
        f'<line x1="{_num(x0)}" x2="{_num(x0)}" y1="{_num(y_text + 2)}" '
        f'y2="{_num(frame.plot_top)}"/>'
        f'<text x="{_num(x0 + 2)}" y="{_num(y_text)}">{esc(label)}</text></g>'
    )


def vline(frame: Frame, x_value: float, label: str, color: str) -> str:
    """A labelled vertical marker."""
    x = _num(frame.x(x_value))
    return (
        f'<g class="marker"><line x1="{x}" x2="{x}" y1="{_num(frame.plot_top)}" '
        f'y2="{_num(frame.plot_bottom)}" stroke="{esc(color)}" stroke-width="1.5" '
        f'stroke-dasharray="4 3"/><text x="{x}" y="{_num(frame.plot_top - 4)}" '
        f'text-anchor="middle" fill="{esc(color)}">{esc(label)}</text></g>'
    )


def legend(frame: Frame, entries: Sequence[tuple[str, str]]) -> str:
    """Colour swatches and names, top right inside the plot."""
    out: list[str] = []
    x = frame.width - frame.right - 8
    y = frame.top + 14
    for name, color in reversed(entries):
        width = 7 * len(name) + 22
        x -= width
        out.append(
            f'<rect x="{x}" y="{y - 8}" width="12" height="8" fill="{esc(color)}"/>'
            f'<text class="legend" x="{x + 16}" y="{y}">{esc(name)}</text>'
        )
    return f'<g class="legend">{"".join(out)}</g>'


def document(frame: Frame, title: str, body: Sequence[str], chart_id: str) -> str:
    """The ``<svg>`` element around ``body``, titled for screen readers."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{esc(chart_id)}" class="chart" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>{''.join(body)}</svg>"
    )
