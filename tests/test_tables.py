"""The one CSV writer and Markdown table writer: read back by the csv module, quoted where asked."""

import csv

from blindsr.tables import csv_text, markdown_table, write_csv

HEAD = ["model", "set", "psnr_y", "note"]
ROWS = [["bicubic", "Set5", "30.000000", ""], ['m, "v2"', "a,b", "31.5", "line\nbreak"], ["x", "", 3, "-"]]


def test_csv_reads_back_cell_for_cell_with_commas_quotes_newlines_and_empties(tmp_path):
    path = write_csv(tmp_path / "t.csv", HEAD, ROWS, quoted=["model"])
    with path.open(newline="") as f:
        assert list(csv.reader(f)) == [HEAD, *[[str(c) for c in r] for r in ROWS]]


def test_quoted_columns_are_always_quoted_and_the_others_only_when_needed():
    lines = csv_text(HEAD, ROWS, quoted=["model"]).split("\n")
    assert lines[0] == "model,set,psnr_y,note"
    assert lines[1] == '"bicubic",Set5,30.000000,'  # what tests/test_evaluate.py reads in table.csv
    assert lines[2].startswith('"m, ""v2""","a,b",31.5,"line')
    assert csv_text(["a"], [[""]], quoted=["a"]) == 'a\n""\n'


def test_markdown_table_has_a_header_a_rule_and_one_line_per_row():
    assert markdown_table(["a", "b"], [[1, "x"], ["y", 2.5]]) == "| a | b |\n|---|---|\n| 1 | x |\n| y | 2.5 |"
