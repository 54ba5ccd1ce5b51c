"""The house style of every figure, and the helpers the question folders' figures share.

Built with the object-oriented matplotlib API (Figure + Agg canvas, no pyplot), so making plots
never changes the caller's backend or global state. Every figure follows the same conventions:
log axes for data, N and compute; units on every axis; filled markers for measured D_E, hollow
markers for extrapolated ones, an X for ossified runs (D_T <= 0); error bars are the 90% intervals
of the bootstrap over runs (D_E, D_T) or the seeds' spread (losses); legends say so and sit outside
the panels, never on the data; N axes are ticked at the measured sizes, and log axes spanning less
than two decades get 1-3 ticks instead of crowded minor labels. `draw_each` draws a list of figures
so that one that fails becomes a SkippedFigure saying why.

Page width (issue 24): panels wrap at MAX_COLUMNS to more rows, a figure is at most PAGE_WIDTH inches
wide and its legend sits under the panels, so that shown 800 px wide (a page, a README column) its
smallest text is still about 9 px. Colour means one thing per figure (a series: a pretraining, an N,
a D_F); flags (extrapolated, ossified, an interval, a law) are told by marker shape or line style and
drawn in neutral grey in the legend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, LogLocator, NullLocator
from PIL import Image

from effdata.fmt import compact

UNIT_WORDS = {"chars": "characters", "tokens": "tokens"}
LOSS_LABEL = "held-out target loss (nats/token)"
SCRATCH_COLOR = "0.15"
FLAG_COLOR = "0.3"        # neutral: a flag's legend entry must not look like one of the series
MAX_PANELS = 5
MAX_COLUMNS = 3           # six panels in a row were 3432 px wide: unreadable scaled to a page
PAGE_WIDTH = 10.0         # inches; shown 800 px wide, 9.35 pt ticks are 10.4 px, the 8.5 pt legend 9.4 px
LEGEND_FONT = "small"


@dataclass
class SavedFigure:
    name: str
    title: str
    caption: str
    png: Path
    svg: Path


@dataclass
class SkippedFigure:
    name: str
    reason: str


def _style() -> dict:
    # svg.fonttype none: SVG text stays text (editable, smaller, faster to write than glyph paths).
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85), "svg.fonttype": "none"}


def grid_shape(n_panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) of a grid of n panels: at most `max_columns` wide, as few rows as that allows."""
    columns = max(1, min(n_panels, max_columns))
    return math.ceil(max(n_panels, 1) / columns), columns


def _new_figure(n_panels: int, width: float = 4.6, height: float = 3.8,
                max_columns: int = MAX_COLUMNS) -> tuple[Figure, list]:
    """n panels wrapped to rows of at most `max_columns`; the panels of a wide grid are narrowed so that the
    figure fits PAGE_WIDTH (not shortened: a 3-inch-high panel cut its loss axis's label). Axes in reading order."""
    rows, columns = grid_shape(n_panels, max_columns)
    figure = Figure(figsize=(min(width, PAGE_WIDTH / columns) * columns, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for spare in axes[n_panels:]:     # the last row's empty places
        spare.remove()
    return figure, axes[:n_panels]


def _save(figure: Figure, out_dir: Path, name: str, title: str, caption: str) -> SavedFigure:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    figure.savefig(png, dpi=130)
    compact_png(png)
    # The layout is settled by the PNG's draw; keep it for the SVG instead of solving it again
    # (constrained layout is most of a save: the SVG of compare_dt took 3.2 s, now 1.4 s, on a loaded box).
    figure.set_layout_engine("none")
    figure.savefig(svg)
    return SavedFigure(name=name, title=title, caption=caption, png=png, svg=svg)


def compact_png(path: Path) -> None:
    """Rewrite a figure's PNG with a 256-colour palette. The figures hold a few line and point colours and their
    anti-aliased edges, which 256 colours keep to the eye, in a third of the bytes (dt_vs_df of
    analysis/cpu-replicates: 242 KB → 85 KB), and the committed PNGs travel to the GPU machine within its 64 MiB
    (every committed PNG: docs/notes/issue-21.md). Median cut without dithering: the same pixels give the same file,
    most pixels exact (mean error 0.05 of 255; fast octree was 3× faster but shifts every colour by about 1). No
    zlib `optimize`: it halved the time (0.11 s a figure) for 11 % more bytes."""
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path)


def _pick(values, count: int) -> list:
    """Up to `count` values spread over the sorted unique values (smallest, ..., largest)."""
    unique = sorted(set(values))
    if len(unique) <= count:
        return unique
    return [unique[i] for i in np.linspace(0, len(unique) - 1, count).round().astype(int)]


def _format_n(n: float) -> str:
    return f"N = {compact(n)}"


def _pretrain_colors(names) -> dict[str, tuple]:
    names = sorted(set(names))
    return dict(zip(names, sns.color_palette("deep", max(len(names), 1))))


def _category_handles(labels_colors) -> list[Line2D]:
    """One filled marker per colour-coded category (N, D_F or pretraining), whatever its points' flags."""
    return [Line2D([], [], marker="o", color=color, linestyle="", label=label) for label, color in labels_colors]


def _data_label(units: str, symbol: str = "D") -> str:
    return f"target data {symbol} ({UNIT_WORDS[units]})"


def _n_short(n: float) -> str:
    """25472 -> '25K', 559392 -> '559K', 1.2e6 -> '1.2M': tick labels of an N axis."""
    if n >= 1e6:
        return f"{n / 1e6:.2g}M"
    return f"{n / 1e3:.0f}K" if n >= 1e3 else f"{n:.0f}"


def _n_axis(ax, n_values) -> None:
    """Log N axis ticked at the measured sizes only (LogLocator's minor labels overlap on 1-2 decades)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(n_values))))
    ax.xaxis.set_major_formatter(lambda value, _: _n_short(value))
    ax.xaxis.set_minor_locator(NullLocator())


def _tidy_log_axis(axis) -> None:
    """No minor ticks; under two decades, major ticks at 1 and 3 x 10^k so there is more than one label."""
    # get_xlim/get_ylim, not axis.get_view_interval(): they apply the (lazy) autoscaling first.
    limits = axis.axes.get_xlim() if axis is axis.axes.xaxis else axis.axes.get_ylim()
    low, high = sorted(limits)
    if low > 0 and np.log10(high / low) < 2:
        # 1-3-10, the steps of our study grids; 1-2-5 labels ran into each other on 3.4-inch panels.
        axis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        axis.set_major_formatter(_power_of_ten_label)   # LogFormatter would label only the powers of ten
    # No minor ticks at all: unlabelled and ungridded in this style, they were a third of the tick work.
    axis.set_minor_locator(NullLocator())


def _power_of_ten_label(value: float, _position=None) -> str:
    """2e4 -> '2×10⁴' (as mathtext), 1e5 -> '10⁵'."""
    if value <= 0:
        return ""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = value / 10 ** exponent
    power = f"10^{{{exponent}}}"
    return f"${power}$" if abs(mantissa - 1) < 1e-6 else f"${mantissa:.2g}\\times{power}$"


def _legend_outside(figure: Figure, handles: list, **kwargs) -> None:
    """One legend for the figure, under the panels (constrained layout makes room for it): beside them it
    made a three-panel figure 40% wider, and so its text 40% smaller on a page. As many columns as the
    longest label lets fit across the figure, the entries spread evenly over the rows."""
    if not handles:
        return
    points = FontProperties(size=LEGEND_FONT).get_size_in_points()
    # A label's width estimated at 0.6 em a character, plus the handle and the column gap (about 5 em).
    longest = max(len(str(h.get_label())) for h in handles)
    entry = (0.6 * longest + 5.0) * points / 72
    columns = max(1, min(len(handles), int(figure.get_figwidth() // entry)))
    rows = math.ceil(len(handles) / columns)
    columns = math.ceil(len(handles) / rows)
    # Constrained layout takes the legend's room out of the panels: grow the figure by it instead
    # (a line is about 1.55 em with the label spacing; the frame and padding about 1.5 em).
    figure.set_figheight(figure.get_figheight() + (1.55 * rows + 1.5) * points / 72)
    figure.legend(handles=handles, loc="outside lower center", fontsize=LEGEND_FONT, ncols=columns, **kwargs)


def _interval_errors(value, lo, hi, floor: float | None = None) -> np.ndarray:
    """(2, n) error-bar lengths from [lo, hi] around value; a lower end <= 0 on a log axis is drawn to `floor`."""
    value, lo, hi = (np.asarray(a, float) for a in (value, lo, hi))
    if floor is not None:
        lo = np.where(lo > 0, lo, floor)
    lower, upper = np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)
    return np.nan_to_num(np.vstack([lower, upper]), nan=0.0, posinf=0.0)


# --------------------------------------------------------------------------- figures

def _dodge(values, index: int, count: int, spread: float = 0.06) -> np.ndarray:
    """Shift log-axis positions by a fraction of a decade so that groups at the same x do not hide each other."""
    return np.asarray(values, float) * 10 ** (spread * (index - (count - 1) / 2))


def draw_each(makers) -> list[SavedFigure | SkippedFigure]:
    """Each (name, make) in the house style; one that raises becomes a SkippedFigure saying why: a figure
    must never take the report down with it."""
    figures = []
    with matplotlib.rc_context(_style()):
        for name, make in makers:
            try:
                figures.append(make())
            except Exception as exc:  # noqa: BLE001
                figures.append(SkippedFigure(name, f"plotting failed: {exc!r}"))
    return figures
