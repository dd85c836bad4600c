"""Small charts drawn as inline SVG text: no script, no font or library from anywhere.

The sign-off report must be a self-contained, archivable file, and the dashboard must work
without internet, so both draw their charts with these two functions. Values are Decimals
(amounts stay exact; only pixel positions are rounded), labels are given as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape

WIDTH, HEIGHT = 640, 250
LEFT, RIGHT, TOP, BOTTOM = 84, 10, 44, 50
PALETTE = ("#2f7d32", "#c62828", "#1565c0", "#ef6c00")


@dataclass(frozen=True)
class Series:
    """One named series of values, one value per label of the chart."""

    name: str
    values: list[Decimal]
    color: str | None = None


def _px(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _frame(title: str, body: list[str], legend: list[Series], x_label: str, y_label: str
           ) -> str:
    """The chart's visible title, legend and axis titles around the plotted ``body``."""
    keys = [f'<text x="{LEFT}" y="14" font-size="13" font-weight="bold" '
            f'data-chart-title="">{escape(title)}</text>']
    x = LEFT
    for i, series in enumerate(legend):
        color = series.color or PALETTE[i % len(PALETTE)]
        keys.append(f'<rect x="{x}" y="22" width="10" height="10" fill="{color}"/>'
                    f'<text x="{x + 14}" y="31" font-size="11">{escape(series.name)}</text>')
        x += 24 + 7 * len(series.name)
    if x_label:
        keys.append(f'<text x="{(LEFT + WIDTH - RIGHT) // 2}" y="{HEIGHT - 6}" font-size="11"'
                    f' text-anchor="middle" data-axis="x">{escape(x_label)}</text>')
    if y_label:
        middle = (TOP + HEIGHT - BOTTOM) // 2
        keys.append(f'<text x="14" y="{middle}" font-size="11" text-anchor="middle" '
                    f'transform="rotate(-90 14 {middle})" data-axis="y">{escape(y_label)}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(keys) + "".join(body) + "</svg>"
    )


def _axis(top: Decimal, labels: list[str], unit: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
           f'y2="{HEIGHT - BOTTOM}" stroke="#555"/>']
    for i in range(5):
        value = top * i / 4
        y = Decimal(HEIGHT - BOTTOM) - Decimal(plot_h) * i / 4
        out.append(f'<line x1="{LEFT}" y1="{_px(y)}" x2="{WIDTH - RIGHT}" y2="{_px(y)}" '
                   f'stroke="#ddd"/><text x="{LEFT - 4}" y="{_px(y + 4)}" font-size="10" '
                   f'text-anchor="end">{_short(value)}{escape(unit)}</text>')
    step = max(1, len(labels) // 10)
    width = Decimal(WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    for i, label in enumerate(labels):
        if i % step == 0:
            x = Decimal(LEFT) + width * i + width / 2
            out.append(f'<text x="{_px(x)}" y="{HEIGHT - BOTTOM + 14}" font-size="10" '
                       f'text-anchor="middle">{escape(label)}</text>')
    return out


def _short(value: Decimal) -> str:
    """An axis label: 1 234 567 as 1.2M, exact enough for a scale."""
    for size, suffix in ((Decimal(10) ** 9, "G"), (Decimal(10) ** 6, "M"),
                         (Decimal(10) ** 3, "k")):
        if abs(value) >= size:
            return f"{(value / size).quantize(Decimal('0.1'))}{suffix}"
    return str(value.quantize(Decimal("0.1")).normalize())


def _scale_top(series: list[Series]) -> Decimal:
    top = max((v for s in series for v in s.values), default=Decimal(0))
    return top if top > 0 else Decimal(1)


def bar_chart(title: str, labels: list[str], series: list[Series], unit: str = "", *,
              x_label: str = "", y_label: str = "") -> str:
    """Grouped bars: for each label, one bar per series; titled, with axis titles."""
    top = _scale_top(series)
    plot_h = Decimal(HEIGHT - TOP - BOTTOM)
    group = Decimal(WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    bar = group * Decimal("0.8") / max(len(series), 1)
    body = _axis(top, labels, unit)
    for s_index, s in enumerate(series):
        color = s.color or PALETTE[s_index % len(PALETTE)]
        for i, value in enumerate(s.values):
            h = plot_h * value / top
            x = Decimal(LEFT) + group * i + group * Decimal("0.1") + bar * s_index
            body.append(
                f'<rect x="{_px(x)}" y="{_px(Decimal(HEIGHT - BOTTOM) - h)}" '
                f'width="{_px(bar)}" height="{_px(h)}" fill="{color}">'
                f"<title>{escape(labels[i])} {escape(s.name)}: {value}{escape(unit)}</title>"
                "</rect>")
    return _frame(title, body, series, x_label, y_label)


def line_chart(title: str, labels: list[str], series: list[Series], unit: str = "", *,
               x_label: str = "", y_label: str = "") -> str:
    """One polyline (with dots) per series; titled, with axis titles."""
    top = _scale_top(series)
    plot_h = Decimal(HEIGHT - TOP - BOTTOM)
    step = Decimal(WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    body = _axis(top, labels, unit)
    for s_index, s in enumerate(series):
        color = s.color or PALETTE[s_index % len(PALETTE)]
        points = [(Decimal(LEFT) + step * i + step / 2,
                   Decimal(HEIGHT - BOTTOM) - plot_h * v / top) for i, v in enumerate(s.values)]
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                    + " ".join(f"{_px(x)},{_px(y)}" for x, y in points) + '"/>')
        for (x, y), label, v in zip(points, labels, s.values, strict=True):
            body.append(f'<circle cx="{_px(x)}" cy="{_px(y)}" r="3" fill="{color}">'
                        f"<title>{escape(label)}: {v}{escape(unit)}</title></circle>")
    return _frame(title, body, series, x_label, y_label)
