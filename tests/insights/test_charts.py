"""Charts (issue 19): axes with titles and units; histogram bins never print the same number at both ends."""

from __future__ import annotations

import re

from insights import charts


def test_histogram_names_each_bin_by_distinct_edges_and_titles_its_axes():
    svg = str(charts.histogram([1, 2, 3], [0.0, 0.001, 0.002, 0.003], label="Human margin per comparison"))
    names = re.findall(r"<title>([^<]*): ", svg)
    assert names == ["0.000–0.001", "0.001–0.002", "0.002–0.003"]
    assert all(low != high for low, high in (n.split("–") for n in names))
    assert 'class="x-title"' in svg and ">Human margin per comparison</text>" in svg
    assert 'class="y-title"' in svg and ">count</text>" in svg


def test_whole_number_edges_print_without_decimals():
    assert charts.edge_labels([0, 30, 60, 90]) == ["0", "30", "60", "90"]
    assert charts.edge_labels([0.1, 0.15, 0.2]) == ["0.10", "0.15", "0.20"]


def test_bar_chart_draws_both_axes_with_a_unit_title():
    svg = str(charts.bar_chart([("a", 2.0), ("b", 4.0)], label="x", y_title="judgments", x_title="day"))
    assert svg.count("<line") == 2  # the x and y axes
    assert ">judgments</text>" in svg and ">day</text>" in svg and ">4</text>" in svg
