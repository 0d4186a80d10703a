"""The pieces of the output contract, pure: how one value is written (csv/tsv and tables),
relative times, and how a table's columns are fitted to a terminal's width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.cells import cell_len

from mailbridge.cli.table import MIN_WIDTH, Style, cut, fit, render
from mailbridge.cli.values import plain, relative, shown

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "written"), [
    (True, "true"), (False, "false"), (None, ""), ([], ""), ({}, ""), (0, "0"),
    (["a@x.test", "b@x.test"], '["a@x.test", "b@x.test"]'), ({"k": None}, '{"k": null}'),
    ("tab\there\nand a line", "tab here and a line"), ("\x1b[2J", "\\x1b[2J"), (0.5, "0.5"),
])
def test_one_rule_for_csv_and_tsv_values(value, written):
    assert plain(value) == written


def test_a_table_cell_for_a_person():
    assert (shown(True), shown(False), shown(["a", "b"]), shown(None)) == ("yes", "no", "a, b", "")
    stamp = (NOW - timedelta(minutes=3)).isoformat(timespec="seconds")
    assert shown(stamp) == stamp  # in a pipe: as stored
    assert shown(stamp, NOW) == "3 min ago"


@pytest.mark.parametrize(("delta", "said"), [
    (timedelta(seconds=20), "just now"), (timedelta(minutes=3), "3 min ago"),
    (timedelta(hours=5, minutes=59), "5 h ago"), (timedelta(days=3), "3 days ago"),
    (-timedelta(hours=4), "in 4 h"), (timedelta(days=40), "2026-10-14"),
])
def test_relative_times(delta, said):
    assert relative(NOW - delta, NOW) == said


def test_columns_that_fit_stay_whole():
    assert fit([2, 6, 30], 80) == [2, 6, 30]


def test_the_widest_columns_are_cut_first_and_the_narrow_ones_stay_whole():
    widths = fit([5, 6, 7, 45, 70, 4, 10], 80)
    assert widths[:3] == [5, 6, 7] and widths[5:] == [4, 10]
    assert widths[3] == widths[4] and sum(widths) + 2 * 6 == 80


def test_columns_that_cannot_get_a_few_characters_are_left_out_from_the_right():
    widths = fit([20] * 12, 80)
    kept = [w for w in widths if w]
    assert widths[len(kept):] == [0] * (12 - len(kept))
    assert min(kept) >= MIN_WIDTH and sum(kept) + 2 * (len(kept) - 1) <= 80


def test_cutting_counts_cells_not_characters():
    assert cut("請求書について", 6) == "請求 …"  # two cells a character; no half character
    assert cell_len(cut("請求書について", 6)) == 6
    assert cut("short", 8) == "short   "


def test_a_rendered_table_never_exceeds_the_width_and_says_what_it_left_out():
    rows = [{f"c{i}": "x" * 30 for i in range(12)}]
    out = render(rows, {f"c{i}": f"c{i}" for i in range(12)}, Style(width=80))
    assert all(cell_len(line) <= 80 for line in out.lines)
    assert out.left_out and out.left_out[-1] == "c11"
