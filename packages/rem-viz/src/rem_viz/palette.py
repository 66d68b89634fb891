"""Category colours that stay the same across images, files and runs.

A colour depends only on the category id, never on which categories an image happens to hold, so
"person" is the same colour in every overlay, in A and in B of a comparison, and in the report.
"""

from __future__ import annotations

import colorsys

# Successive multiples of the golden-ratio conjugate spread hues evenly for any number of ids.
_GOLDEN = 0.6180339887498949
# Saturation/value pairs cycled by id so that neighbouring hues also differ in lightness.
_SV = ((0.85, 0.95), (0.65, 0.80), (0.95, 0.70))


def category_color(category_id: int) -> tuple[int, int, int]:
    """The RGB colour (0..255 each) of a category, a pure function of its id."""
    hue = (0.11 + category_id * _GOLDEN) % 1.0
    sat, val = _SV[category_id % len(_SV)]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


def color_hex(rgb: tuple[int, int, int]) -> str:
    """``#rrggbb`` for CSS."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)
