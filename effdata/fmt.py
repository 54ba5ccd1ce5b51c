"""Numbers as people read them, one function per style, shared by every layer (no dependencies)."""
from __future__ import annotations

import math
import numbers


def si(n: float) -> str:
    """1234567 -> '1.23M', 45000 -> '45.00k', 12 -> '12': sizes of corpora and token counts."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def sig(value, digits: int = 3) -> str:
    """A number for a Markdown table: `digits` significant digits, whole numbers as they are, ∞, or an
    em dash when missing."""
    if value is None:
        return "—"
    if isinstance(value, numbers.Integral):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def compact(value: float) -> str:
    """3e+05 -> '3e5', 25000 -> '2.5e4': two significant digits for legends and titles."""
    return f"{value:.2g}".replace("e+0", "e").replace("e+", "e")


def short_number(n: int) -> str:
    """1000000 -> '1e6', 300000 -> '3e5', 123456 -> '123456': data sizes in run ids and labels."""
    text = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
    return text if int(float(text)) == n else str(n)
