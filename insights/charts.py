"""Server-rendered SVG charts for the dashboards: no JavaScript library, no CDN, every label escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

ACCENT = "#2f5bd3"
MUTED = "#5b6475"
LINE = "#dde1e8"
BAD = "#b3261e"
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg(width: int, height: int, body: list[str], label: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every piece of data in `body` went through escape()
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" class="chart">' + "".join(body) + "</svg>"
    )


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:,.0f}"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    label: str,
    width: int = 640,
    height: int = 180,
    every: int = 0,
    x_title: str = "",
    y_title: str = "count",
) -> SafeString:
    """Vertical bars with a label under every `every`-th bar (all when 0 and few), a y axis from 0 to the
    peak, and the axes' titles with their units (`x_title` under the bars, `y_title` up the left side)."""
    left, bottom, top = 48, 36 if x_title else 22, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max((v for _, v in bars), default=0) or 1
    n = max(len(bars), 1)
    step = plot_w / n
    every = every or max(1, math.ceil(n / 10))
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="{MUTED}"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{MUTED}"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" fill="{MUTED}" {FONT}>{_fmt(peak)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" fill="{MUTED}" {FONT}>0</text>',
    ]
    if y_title:
        body.append(
            f'<text class="y-title" transform="translate(12,{top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
            f'fill="{MUTED}" {FONT}>{escape(y_title)}</text>'
        )
    if x_title:
        body.append(
            f'<text class="x-title" x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="{MUTED}" '
            f"{FONT}>{escape(x_title)}</text>"
        )
    labels_y = top + plot_h + 14
    for i, (name, value) in enumerate(bars):
        h = plot_h * value / peak
        x = left + i * step
        body.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.8:.1f}" '
            f'height="{h:.1f}" fill="{ACCENT}"><title>{escape(name)}: {_fmt(value)}</title></rect>'
        )
        if i % every == 0:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{labels_y}" text-anchor="middle" fill="{MUTED}" '
                f"{FONT}>{escape(name)}</text>"
            )
    return _svg(width, height, body, label)


def interval_chart(
    rows: Sequence[tuple[str, float | None, list[float] | None]],
    *,
    label: str,
    width: int = 760,
    lo: float = -0.2,
    hi: float = 1.0,
) -> SafeString:
    """One row per name: a dot at the point figure and a bar over its interval (a forest plot)."""
    values = [v for _, p, ci in rows for v in ([p] if p is not None else []) + (ci or [])]
    lo = min([lo, *values])
    hi = max([hi, *values])
    name_w, row_h, top = 300, 20, 18
    plot_w = width - name_w - 40
    height = top + row_h * len(rows) + 8

    def x(v: float) -> float:
        return name_w + plot_w * (v - lo) / (hi - lo)

    body = []
    for tick in (lo, 0.0, 0.5, hi):
        if lo <= tick <= hi:
            body.append(
                f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{height - 6}" stroke="{LINE}"/>'
                f'<text x="{x(tick):.1f}" y="{top - 6}" text-anchor="middle" fill="{MUTED}" {FONT}>{_fmt(tick)}</text>'
            )
    for i, (name, point, ci) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        body.append(
            f'<text x="{name_w - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#1d2330" {FONT}>{escape(name)}</text>'
        )
        if ci is not None:
            body.append(
                f'<line x1="{x(ci[0]):.1f}" y1="{y:.1f}" x2="{x(ci[1]):.1f}" y2="{y:.1f}" '
                f'stroke="{ACCENT}" stroke-width="3" stroke-opacity="0.45"/>'
            )
        if point is None:
            body.append(f'<text x="{x(lo) + 4:.1f}" y="{y + 4:.1f}" fill="{MUTED}" {FONT}>undefined</text>')
        else:
            tip = f"{name}: {point:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            body.append(
                f'<circle cx="{x(point):.1f}" cy="{y:.1f}" r="4" fill="{ACCENT}"><title>{escape(tip)}</title></circle>'
            )
    return _svg(width, height, body, label)


def _heat_colour(v: float | None) -> str:
    if v is None:
        return "#eeeeee"
    v = max(-1.0, min(1.0, v))
    if v >= 0:  # white to accent blue
        r, g, b = (int(255 + (c - 255) * v) for c in (47, 91, 211))
    else:  # white to red
        r, g, b = (int(255 + (c - 255) * -v) for c in (179, 38, 30))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(
    names: Sequence[str], cells: dict[tuple[int, int], tuple[float | None, int]], *, label: str, cell: int = 0
) -> SafeString:
    """A symmetric matrix (Cohen's kappa per annotator pair); `cells[(i, j)] = (value, n)` for i < j."""
    n = len(names)
    cell = cell or max(6, min(30, 600 // max(n, 1)))
    margin = 120
    size = margin + cell * n + 4
    body = []
    show_names = cell >= 9
    for i, name in enumerate(names):
        if show_names:
            body.append(
                f'<text x="{margin - 4}" y="{margin + cell * i + cell * 0.7:.1f}" text-anchor="end" '
                f"{FONT}>{escape(name[:18])}</text>"
                f'<text transform="translate({margin + cell * i + cell * 0.7:.1f},{margin - 4}) rotate(-60)" '
                f"{FONT}>{escape(name[:18])}</text>"
            )
    for (i, j), (value, shared) in cells.items():
        for a, b in ((i, j), (j, i)):
            tip = f"{names[i]} × {names[j]}: " + ("undefined" if value is None else f"{value:.3f}")
            body.append(
                f'<rect x="{margin + cell * b}" y="{margin + cell * a}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{_heat_colour(value)}"><title>{escape(tip)} on {shared}</title></rect>'
            )
    for i in range(n):
        body.append(
            f'<rect x="{margin + cell * i}" y="{margin + cell * i}" width="{cell - 1}" height="{cell - 1}" fill="{LINE}"/>'
        )
    return _svg(size, size, body, label)


def edge_labels(edges: Sequence[float]) -> list[str]:
    """The bins' edges with the fewest decimals (0 to 6) that still tell every edge from the next."""
    for decimals in range(7):
        shown = [f"{e:.{decimals}f}" for e in edges]
        if all(a != b for a, b in zip(shown, shown[1:], strict=False)):
            return shown
    return [f"{e:g}" for e in edges]


def histogram(
    counts: Sequence[int],
    edges: Sequence[float],
    *,
    label: str,
    width: int = 640,
    height: int = 180,
    x_title: str | None = None,
    y_title: str = "count",
) -> SafeString:
    """Bars per bin, each named by its two edges (never the same number twice); the x axis is titled with
    `x_title` (the chart's label when not given), the y axis with `y_title`."""
    shown = edge_labels(edges)
    bars = [(f"{shown[i]}–{shown[i + 1]}", float(c)) for i, c in enumerate(counts)]
    return bar_chart(
        bars,
        label=label,
        width=width,
        height=height,
        every=max(1, len(bars) // 5),
        x_title=label if x_title is None else x_title,
        y_title=y_title,
    )


def reliability_diagram(
    bins: Sequence[dict],
    *,
    label: str,
    size: int = 300,
    x_title: str = "σ(model margin)",
    y_title: str = "human agreement share",
) -> SafeString:
    """Mean σ(model margin) (x) against the mean observed share (y) per bin; the diagonal is perfect. Other
    predictions and outcomes (a confidence against being right) name their axes with `x_title`, `y_title`."""
    pad = 32
    plot = size - 2 * pad

    def px(v: float) -> float:
        return pad + plot * v

    def py(v: float) -> float:
        return size - pad - plot * v

    body = [
        f'<rect x="{pad}" y="{pad}" width="{plot}" height="{plot}" fill="none" stroke="{LINE}"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="{MUTED}" stroke-dasharray="4 3"/>',
        f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle" fill="{MUTED}" {FONT}>{escape(x_title)}</text>',
        f'<text transform="translate(12,{size / 2}) rotate(-90)" text-anchor="middle" fill="{MUTED}" {FONT}>'
        f"{escape(y_title)}</text>",
    ]
    peak = max((b["n"] for b in bins), default=0) or 1
    points = [(b["mean_predicted"], b["mean_observed"], b["n"]) for b in bins if b["n"]]
    if points:
        path = " ".join(f"{px(p):.1f},{py(o):.1f}" for p, o, _ in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    for p, o, n in points:
        r = 2 + 5 * math.sqrt(n / peak)
        body.append(
            f'<circle cx="{px(p):.1f}" cy="{py(o):.1f}" r="{r:.1f}" fill="{ACCENT}">'
            f"<title>predicted {p:.3f}, observed {o:.3f}, n = {n}</title></circle>"
        )
    return _svg(size, size, body, label)
