"""Reports of model-level initialization: lists of rows, printable as tables."""

from __future__ import annotations

import dataclasses
from typing import List


class Report(list):
    """A list of dataclass rows that prints as an aligned text table.

    ``print(report)`` shows the table; `to_markdown()` gives it as Markdown
    and `to_dataframe()` as a `pandas.DataFrame`. Subclasses name the row
    fields to show in `columns`.
    """

    columns: tuple = ()

    def cells(self) -> List[List[str]]:
        return [[_format(getattr(row, name)) for name in self.columns] for row in self]

    def __str__(self) -> str:
        return text_table([list(self.columns)] + self.cells())

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.cells()]
        return "\n".join(lines)

    def to_dataframe(self):
        """The rows as a `pandas.DataFrame` (needs pandas): one column per
        field of the row dataclass that its repr shows (`columns` first),
        values as they are (tuples stay tuples, numbers stay numbers)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError(
                f"{type(self).__name__}.to_dataframe() needs pandas (pip install pandas); "
                "the same rows print as a table with print(report)"
            ) from error
        names = list(self.columns)
        if self:
            names += [f.name for f in dataclasses.fields(self[0]) if f.repr and f.name not in names]
        return pandas.DataFrame([[getattr(row, name) for name in names] for row in self], columns=names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows)\n{self}"


def text_table(rows: List[List[str]]) -> str:
    """`rows` (the first one the headings) as aligned columns, a rule of dashes
    under the headings."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return "" if value is None else str(value)

