"""Small server-side SVG charts: no JavaScript, no CDN, work offline."""

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def line_chart(points, label: str, unit: str = "", width: int = 520, height: int = 120, budget=None):
    """points: [(x_label, value)] oldest first. An optional budget draws a dashed line."""
    values = [float(v) for _, v in points if v is not None]
    if len(values) < 2:
        return format_html('<p class="muted">Not enough history for a chart of {} yet.</p>', label)
    top = max(values + ([float(budget)] if budget else [])) or 1.0
    pad = 24
    step = (width - 2 * pad) / (len(values) - 1)

    def y(value):
        return height - pad - (value / top) * (height - 2 * pad)

    coords = [(pad + i * step, y(v)) for i, v in enumerate(values)]
    parts = [f'<polyline points="{" ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)}" />']
    for i, (x, yy) in enumerate(coords):
        parts.append(f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="2.5"><title>{escape(points[i][0])}: '
                     f'{values[i]:.2f} {escape(unit)}</title></circle>')
    if budget:
        by = y(float(budget))
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{by:.1f}" y2="{by:.1f}" class="budget">'
                     f'<title>budget {float(budget):g} {escape(unit)}</title></line>')
    parts.append(f'<text x="{pad}" y="14">{escape(label)} (max {top:.2f} {escape(unit)})</text>')
    return mark_safe(  # every interpolated text above is escaped
        f'<figure class="chart"><svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        + "".join(parts) + "</svg></figure>"
    )


@register.filter
def hours(seconds) -> str:
    """A budget in seconds, as an operator says it: 1 h, 24 h, 90 min."""
    seconds = float(seconds or 0)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
