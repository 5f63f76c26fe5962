"""What the commands print through: the exit codes, one rich console for lines and tables (JSON goes to stdout
as plain text), notes on stderr, and what the history kept of a recording, finished or interrupted."""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from core.history import strict_json
from core.history.recorder import Recording

EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@functools.cache
def console() -> Console:
    """stdout as rich sees it; model text and prompts are never read as markup or emoji codes."""
    # The terminal's width, else COLUMNS, else 120 columns when piped (rich alone would assume 80).
    width = shutil.get_terminal_size((120, 20)).columns
    return Console(width=width, markup=False, emoji=False, highlight=False)


def say(line: str) -> None:
    """One line on stdout, never wrapped or cut (so a pipe sees it whole)."""
    console().print(line, soft_wrap=True)


def note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def print_json(data: Any) -> None:
    print(strict_json(data))


def table(*columns: str | Column, **options: Any) -> Table:
    """A table without borders, as the command line draws every table."""
    return Table(*columns, box=None, pad_edge=False, header_style="bold", **options)


def cell(text: str) -> Text:
    """A cell kept on one line and cut with … when the column is narrower."""
    return Text(text, no_wrap=True, overflow="ellipsis")


@dataclass(frozen=True)
class Field:
    """A column of a StreamedTable: a fixed width, or None for the last column, which takes the rest of the line."""

    header: str
    width: int | None = None
    justify: Literal["left", "right"] = "left"


class StreamedTable:
    """A table printed a row at a time as results arrive; the fixed widths keep the rows of separate prints aligned."""

    def __init__(self, *fields: Field):
        self.fields = fields

    def _table(self, show_header: bool) -> Table:
        # Fresh columns each time: a rich Column keeps the cells added to it.
        return table(*(Column(f.header, width=f.width, justify=f.justify, no_wrap=f.width is not None)
                       for f in self.fields), show_header=show_header)

    def header(self) -> None:
        console().print(self._table(show_header=True))

    def row(self, *cells: str) -> None:
        row = self._table(show_header=False)
        row.add_row(*map(cell, cells))
        console().print(row)


@contextlib.contextmanager
def interruptible(recording: Recording, planned: int) -> Iterator[None]:
    """Ctrl-C while the runs arrive: cancel those in flight, and let main say how many the history kept."""
    try:
        yield
    except KeyboardInterrupt:
        recording.close()
        kept = (f"{recording.saved} of {planned} runs kept as {recording.experiment_id} (incomplete)"
                if recording.experiment_id else "nothing was saved")
        raise KeyboardInterrupt(kept) from None


def say_saved(recording: Recording, planned: int, as_json: bool) -> None:
    """Where the runs went: exactly how many the history kept when it failed part-way (a note beside --json)."""
    experiment_id, error = recording.experiment_id, recording.save_error
    if experiment_id is None:
        line = f"not saved to the history: {error}"
    elif error is None:
        line = f"saved as {experiment_id}"
    elif recording.saved < planned:
        line = f"saved {recording.saved} of {planned} runs as {experiment_id}; the rest were not saved: {error}"
    else:
        line = f"saved {planned} of {planned} runs as {experiment_id}, but not marked complete: {error}"
    if experiment_id and not as_json:
        say(line)
    elif error:
        note(line)
