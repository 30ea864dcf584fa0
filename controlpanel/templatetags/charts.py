"""Small server-side SVG charts: no JavaScript, no CDN, work offline."""

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def line_chart(points, label: str, unit: str = "", width: int = 520, height: int = 120, budget=None):
    """points: [(x_label, value)] oldest first. An optional budget draws a dashed line."""
    values = [float(v) for _, v in points if v is not None]
    if len(values) < 2:
        return mark_safe(f'<p class="muted">Not enough history for a chart of {label} yet.</p>')
    top = max(values + ([float(budget)] if budget else [])) or 1.0
    pad = 24
    step = (width - 2 * pad) / (len(values) - 1)

    def y(value):
        return height - pad - (value / top) * (height - 2 * pad)

    coords = [(pad + i * step, y(v)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
    dots = format_html_join("", '<circle cx="{:.1f}" cy="{:.1f}" r="2.5"><title>{}: {} {}</title></circle>',
                            ((x, yy, points[i][0], round(values[i], 2), unit) for i, (x, yy) in enumerate(coords)))
    budget_line = ""
    if budget:
        by = y(float(budget))
        budget_line = format_html('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="budget"><title>budget {} {}</title></line>',
                                  pad, width - pad, by, by, budget, unit)
    return format_html(
        '<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<polyline points="{}" />{}{}<text x="{}" y="14">{} (max {} {})</text></svg></figure>',
        width, height, label, path, dots, budget_line, pad, label, round(top, 2), unit,
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
