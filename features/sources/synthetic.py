"""``synthetic``: ``features.synthetic.write_day(spec, date, out_dir, rows=, seed=)`` per day with
``options.rows_per_day`` (100_000) and ``options.seed`` (0), each day checked against the raw-day
contract. Every day is a piece of its own whose input is the generator's source file.

The generator is imported where it is used, not with this module, so that ``sys.modules`` decides
which one runs (the tests stand a small one in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from features.lake import Lake, date_range, staged_dir, write_record
from features.spec import DatasetSpec

from .common import SourceError
from .pieces import Piece


def _generator() -> tuple[Callable[..., int], Path]:
    """``features.synthetic.write_day`` and the generator's source file."""
    from features.synthetic import __file__ as source, write_day

    return write_day, Path(source)


def synthetic_pieces(spec: DatasetSpec) -> list[Piece]:
    """One piece per day, read from the generator's source file."""
    source = _generator()[1]
    return [Piece((source,), (d,), "synthetic") for d in date_range(spec.source.start_date, spec.source.days)]


def write_synthetic_day(lake: Lake, spec: DatasetSpec, date: str, record: dict) -> int:
    """Generate ``date`` into ``raw/<dataset>/dt=<date>/`` with its completion record; the rows written."""
    with staged_dir(lake.raw(spec.name, date)) as tmp:   # local files, published to the lake
        rows = _generate(spec, date, tmp)
        write_record(tmp, {**record, "dataset": spec.name, "date": date, "rows": rows})
    return rows


def _generate(spec: DatasetSpec, date: str, out: Path) -> int:
    """One synthetic day written by ``features.synthetic.write_day``, checked against the contract."""
    write_day = _generator()[0]
    opts = spec.source.options
    rows = write_day(spec, date, out, rows=int(opts.get("rows_per_day", 100_000)), seed=int(opts.get("seed", 0)))
    data = pds.dataset(sorted(out.glob("part-*.parquet")), format="parquet")
    missing = [c for c in spec.raw_columns if c not in data.schema.names]
    if missing:
        raise SourceError(f"dataset {spec.name!r}: synthetic day {date} lacks column(s) {missing}")
    label = data.to_table(columns=[spec.label])[spec.label]
    bad = label.length() - pc.sum(pc.is_in(label, value_set=pa.array([0, 1]).cast(label.type))).as_py()
    if bad:
        raise SourceError(f"dataset {spec.name!r}: synthetic day {date} has {bad} label value(s) "
                          f"outside {{0, 1}} in {out}")
    return int(rows)
