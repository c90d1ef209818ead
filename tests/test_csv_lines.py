"""The fast quoted-CSV line reader (polars' CSV reader + an end-of-line field that gives the field count) must
agree with the plain regex split on every line: the same well-formedness, field count and fields."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.formats.common import read_csv_lines, split_csv_fields, split_lines

# characters that stress the CSV rules: separators, quotes, a bare CR, the end-of-line marker's bytes, text
_CHARS = st.sampled_from([",", '"', '""', "\r", "\x02", "\x03", "a", "7", " ", "é", ""])
_LINE = st.lists(_CHARS, max_size=14).map("".join)


def _by_regex(lines: pl.DataFrame) -> list[tuple[bool, int | None, list[str] | None]]:
    split = split_csv_fields(lines)
    return [
        (wf, len(fields), fields) if wf else (wf, None, None)
        for wf, fields in zip(split["well_formed"].to_list(), split["fields"].to_list(), strict=True)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_LINE, max_size=8), st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=2)
)
def test_reader_agrees_with_the_regex_split(lines: list[str], min_fields: int, extra: int) -> None:
    frame = split_lines("\n".join(lines) + "\n")
    width = min_fields + extra
    read = read_csv_lines(frame, width, min_fields, width)
    assert read["line_no"].to_list() == frame["line_no"].to_list()  # every physical line, in order
    for row, (wf, n, fields) in zip(read.iter_rows(named=True), _by_regex(frame), strict=True):
        assert row["well_formed"] == wf, row["raw"]
        if not wf:
            assert all(row[f"f{i}"] is None for i in range(width))
            continue
        assert row["n_fields"] == n, row["raw"]
        readable = n is not None and min_fields <= n <= width
        expected = [fields[i] if readable and fields and i < n else None for i in range(width)]
        assert [row[f"f{i}"] for i in range(width)] == expected, row["raw"]


def test_a_typical_switch_file_reads_by_the_reader() -> None:
    # 3 well-formed lines (2, 3 and 4 fields) with a quoted comma and an escaped quote; width 3: the 4-field
    # line is too long and keeps no fields, the 2-field one has f2 null
    frame = split_lines('"a,b",1\n"x""y",,3\nq,w,e,r\n')
    read = read_csv_lines(frame, 3, 2, 3)
    assert read["n_fields"].to_list() == [2, 3, 4]
    assert read.select("f0", "f1", "f2").rows() == [("a,b", "1", None), ('x"y', "", "3"), (None, None, None)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "\n", "\r", "\r\n", "\x1f", "\x00", '"', ",", "é", " ", "#"]), max_size=20)
)
def test_lines_are_the_physical_lines(chars: list[str]) -> None:
    text = "".join(chars)
    expected = text.split("\n")
    if text.endswith("\n") or text == "":
        expected.pop()
    lines = split_lines(text)
    assert lines["raw"].to_list() == [line.removesuffix("\r") for line in expected]
    assert lines["line_no"].to_list() == list(range(1, len(expected) + 1))
