"""Reading a CSV file people made in a spreadsheet: a header row naming the columns (any
case, any order, extra columns ignored), UTF-8 with or without a BOM, one clear error."""

from __future__ import annotations

import csv
from pathlib import Path

from mailbridge.errors import UsageError


def read_rows(path: Path, required: tuple[str, ...], columns: tuple[str, ...]
              ) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; `required` columns must be in the header."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            if not set(required) <= set(header):
                raise UsageError(f"{path}: the first line must name the columns: "
                                 f"{', '.join(columns)} (it has: {', '.join(header) or 'nothing'})")
            reader.fieldnames = header
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k})
                    for row in reader]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: not a UTF-8 CSV file: {exc}") from None
