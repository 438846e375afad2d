"""Plots: published points keyed in a legend beside the plot, no text over text."""

import itertools

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from usb4fabric import plots, reference


def _measured() -> dict[str, pd.DataFrame]:
    sizes = [8, 4096, 65536, 1 << 20]
    return {name: pd.DataFrame({"size": sizes, "median": [v] * 4, "min": [v * 0.9] * 4,
                                "max": [v * 1.1] * 4})
            for name, v in (("usb4", 3000.0), ("ethernet", 1000.0), ("shm", 6000.0))}


def _texts(fig):
    """Every piece of text drawn but the tick labels, with its box on the canvas."""
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    for legend in [*fig.legends, ax.get_legend()]:
        texts += [legend.get_title(), *legend.get_texts()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts
            if t.get_visible() and t.get_text()]


def test_published_points_are_keyed_and_no_text_overlaps():
    refs = reference.load()
    bw = refs[refs["plot_metric"] == "bandwidth"]
    fig = plots.figure_for("bw", "bandwidth", _measured(), bw)
    drawn = _texts(fig)
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(drawn, 2)
                   if box_a.overlaps(box_b)]
    assert overlapping == []
    # every published point that has a place on the plot is named in a legend by its id
    legend_text = " ".join(t for t, _ in drawn)
    placed = bw[bw["size"].notna() & (bw["size"] > 0)]
    assert len(placed) >= 3
    for ref_id in placed["ref_id"]:
        assert f"{ref_id}," in legend_text or f"{ref_id}:" in legend_text, ref_id
    # one key (marker, colour) per published fabric, never two fabrics on one key
    keys = plots.reference_keys(bw)
    assert len({(m, c) for m, c, _ in keys.values()}) == len(keys)
    # the P21/P22-style crowd at 1 MiB: three ids of one source share one legend entry
    assert any(len(ids) >= 3 for _, _, ids in keys.values())
