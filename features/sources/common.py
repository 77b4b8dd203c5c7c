"""What every reader shares: the error, a reader family's description, the reading context and
Arrow's CSV reader."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pv

from features.spec import DatasetSpec

COMMON_OPTIONS = frozenset({"files", "cut", "seed", "time_column", "rows_per_part"})


class SourceError(ValueError):
    """A source that cannot be landed; the message names the dataset, file, date and column."""


@dataclass(frozen=True)
class Kind:
    """A reader family: ``read`` turns one file into an Arrow table holding ``spec.label`` (mapped to
    {0, 1}) and the source's columns; ``layout`` says how files become days (package docstring)."""

    read: Callable[[ReadContext, Path, list[str] | None], pa.Table]
    layout: str                                   # "split" or "concat"
    options: frozenset[str]                       # adapter-specific option keys
    defaults: dict[str, Any] = field(default_factory=dict)
    dated: bool = False                           # supports source.date_column


@dataclass(frozen=True)
class ReadContext:
    """A source being read: its spec, reader family, files in reading order and options with defaults."""

    spec: DatasetSpec
    kind: Kind
    files: tuple[Path, ...]
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


@contextlib.contextmanager
def reading(ctx: ReadContext, path: Path) -> Iterator[None]:
    """Turn a reader's failure into an error that names the dataset and the file."""
    try:
        yield
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"dataset {ctx.name!r}: cannot read {path} as {ctx.spec.source.kind}: {e}") from e


def read_csv(ctx: ReadContext, path: Path, *, sep: str, header: bool, names: list[str] | None = None,
             types: dict[str, pa.DataType] | None = None, include: list[str] | None = None) -> pa.Table:
    """Arrow's CSV reader; only the empty string is missing (``NA`` may be a real category)."""
    with reading(ctx, path):
        return pv.read_csv(
            path,
            read_options=pv.ReadOptions(column_names=names, skip_rows=1 if (header and names) else 0),
            parse_options=pv.ParseOptions(delimiter=sep, quote_char=False if sep in "\t " else '"'),
            convert_options=pv.ConvertOptions(column_types=types, include_columns=include, null_values=[""],
                                              strings_can_be_null=True),
        )
