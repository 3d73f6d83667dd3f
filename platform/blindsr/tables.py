"""The one CSV writer (the ``csv`` module's quoting) and the one Markdown table writer, for every report and job."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def _field(value: Any, always: bool) -> str:
    """One CSV field: quoted and escaped by the csv module, always (free text) or only where the value needs it."""
    if value == "" and not always:  # a lone empty field: the csv module quotes it, an empty field in a row is bare
        return ""
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL if always else csv.QUOTE_MINIMAL, lineterminator="\n").writerow([value])
    return buf.getvalue()[:-1]  # the line terminator is what makes the writer quote a field's newline


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], quoted: Sequence[str] = ()) -> str:
    """CSV with a header line, one line per row, each line ending in ``\\n``. The columns named in ``quoted`` (model
    names, labels, JSON) are always quoted; numbers are written as given (format them first)."""
    always = [name in quoted for name in header]
    lines = [",".join(_field(h, False) for h in header)]
    lines += [",".join(_field(v, a) for v, a in zip(row, always, strict=True)) for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]], quoted: Sequence[str] = ()
) -> Path:
    """Write :func:`csv_text` to ``path``."""
    path = Path(path)
    path.write_text(csv_text(header, rows, quoted))
    return path


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table (no trailing newline): the header line, ``|---|…|``, one line per row."""
    lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
