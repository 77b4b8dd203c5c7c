"""Feature days -> model batches: contiguous tensors read with pyarrow, batches by index slicing.

A feature day is ``features/<dataset>/dt=YYYY-MM-DD/part-*.parquet`` (+ ``_COMPLETE.json``) with one
int64 feature-ID column per manifest field, ``label`` and ``group``. It becomes::

    ids    LongTensor  [N, n]   raw feature IDs in manifest field order; with multi-valued fields
                        [N, n + W]: column f holds a bag field's bag ID, and each bag's max_len
                        element IDs (padded with ``PAD_ID``) follow the n columns (``layers.bags``)
    label  FloatTensor [N]      0/1
    group  LongTensor  [N]      GAUC group key (0 when the dataset has none)

Days that fit ``budget_bytes`` are held in memory (``FeatureTable``: one ``randperm`` per epoch,
batches are index gathers, no per-row Python). Larger windows stream (``StreamingDays``): Parquet
row groups in a shuffled order feed a shuffle buffer of ``buffer_rows`` rows, permuted and cut into
batches; memory stays O(buffer_rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from features.lake import Lake
from features.manifest import Manifest
from features.hashing import bag_ids, list_offsets
from features.storage import parquet_file, read_table

from .layers.bags import PAD_ID

LABEL, GROUP = "label", "group"


class Batch(NamedTuple):
    ids: torch.Tensor     # [B, n] int64
    label: torch.Tensor   # [B] float32
    group: torch.Tensor   # [B] int64


class Batches(Protocol):
    """What training and prediction iterate over: in-memory or streamed days."""

    fields: list[str]

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]: ...


# --- reading ------------------------------------------------------------------------------------

def bag_layout(manifest: Manifest, fields: list[str]) -> list[tuple[int, int, str]]:
    """The multi-valued fields among ``fields``: ``[(index, max_len, pooling)]`` (``CTRModel.use_bags``)."""
    return [(j, int(manifest.multi[f]["max_len"]), manifest.multi[f]["pooling"])
            for j, f in enumerate(fields) if f in manifest.multi]


def _widths(lake: Lake, dataset: str) -> dict[str, int]:
    """max_len of each multi-valued field, from the manifest ({} without one: no list column is read)."""
    try:
        return {f: int(m["max_len"]) for f, m in Manifest.of(lake, dataset).multi.items()}
    except FileNotFoundError:
        return {}


def _read(f: Path, fields: list[str], where: str, row_group: int | None = None,
          widths: dict[str, int] | None = None) -> tuple[np.ndarray, ...]:
    """One file (or one of its row groups) -> (ids [N, n (+ W)] int64, label [N] float32, group [N] int64)."""
    pf = parquet_file(f)
    missing = [c for c in fields + [LABEL, GROUP] if c not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} (manifest fields: {fields})")
    columns = fields + [LABEL, GROUP]
    table = pf.read(columns=columns) if row_group is None else pf.read_row_group(row_group, columns=columns)
    return _arrays(table, fields, where, widths or {})


def _elements(name: str, col, width: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(bag IDs [N], element IDs [N, width] padded with PAD_ID) of a list<int64> column."""
    offsets, elements = list_offsets(col)
    lengths = np.diff(offsets)
    if lengths.max(initial=0) > width:
        raise ValueError(f"{where}: multi-valued field {name!r} holds lists of up to {lengths.max()} IDs, "
                         f"more than its max_len {width} in the manifest; rebuild the features (`dea features --force`)")
    matrix = np.full((len(lengths), width), PAD_ID, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    matrix[rows, np.arange(rows.size) - offsets[rows]] = elements
    return bag_ids(name, offsets, elements), matrix


def _arrays(table: pa.Table, fields: list[str], where: str,
            widths: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bags = [f for f in fields if f in widths]
    ids = np.empty((table.num_rows, len(fields) + sum(widths[f] for f in bags)), np.int64)
    start = len(fields)
    for j, name in enumerate(fields):
        col = table.column(name)
        if col.null_count:
            raise ValueError(f"{where}: field {name!r} holds {col.null_count} nulls; feature IDs must be set")
        if name in widths:
            if not pa.types.is_list(col.type):
                raise ValueError(f"{where}: field {name!r} is {col.type}, but the manifest makes it multi-valued "
                                 f"(list<int64>); rebuild the features (`dea features --force`)")
            ids[:, j], ids[:, start:start + widths[name]] = _elements(name, col, widths[name], where)
            start += widths[name]
        elif not pa.types.is_integer(col.type):
            raise ValueError(f"{where}: field {name!r} is {col.type}, expected int64 feature IDs")
        else:
            ids[:, j] = col.to_numpy()
    label = table.column(LABEL).to_numpy(zero_copy_only=False).astype(np.float32)
    group = table.column(GROUP).to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, label, group


@dataclass
class FeatureTable:
    """Feature days held as contiguous tensors."""

    ids: torch.Tensor
    label: torch.Tensor
    group: torch.Tensor
    fields: list[str]

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.ids, self.label, self.group))

    def to(self, device: torch.device | str) -> "FeatureTable":
        return FeatureTable(self.ids.to(device), self.label.to(device), self.group.to(device), self.fields)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches of ``batch_size`` rows (the last one shorter); a fresh permutation when shuffled.

        The permutation is drawn on CPU from ``generator``, so a seed gives the same order on any device.
        """
        n = len(self)
        if not shuffle:
            for s in range(0, n, batch_size):
                yield Batch(self.ids[s:s + batch_size], self.label[s:s + batch_size], self.group[s:s + batch_size])
            return
        order = torch.randperm(n, generator=generator).to(self.ids.device)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            yield Batch(self.ids[idx], self.label[idx], self.group[idx])


def load_days(lake: Lake, dataset: str, dates: list[str], fields: list[str] | None = None) -> FeatureTable:
    """Read feature days (in the given order) into one in-memory ``FeatureTable``."""
    fields = list(fields or Manifest.of(lake, dataset).fields)
    widths = _widths(lake, dataset)
    parts = []
    for date in dates:
        for f in lake.day_files("features", dataset, date):
            parts.append(_read(f, fields, f"dataset {dataset!r} day {date} file {f}", widths=widths))
    if not parts:
        raise ValueError(f"dataset {dataset!r}: no dates given to load")
    ids, label, group = (np.concatenate(x) for x in zip(*parts))
    return FeatureTable(torch.from_numpy(ids), torch.from_numpy(label), torch.from_numpy(group), fields)


class StreamingDays:
    """Feature days larger than memory: row groups in shuffled order through a shuffle buffer.

    Each epoch visits every row exactly once. Units (file, row group) are shuffled, read one at a
    time and appended to a buffer; a full buffer (>= ``buffer_rows``) is permuted and cut into
    batches, the remainder (< batch_size rows) carried into the next buffer.
    """

    def __init__(self, lake: Lake, dataset: str, dates: list[str], fields: list[str] | None = None,
                 buffer_rows: int = 1_000_000):
        self.dataset = dataset
        self.fields = list(fields or Manifest.of(lake, dataset).fields)
        self.widths = _widths(lake, dataset)
        self.buffer_rows = buffer_rows
        self.units: list[tuple[Path, int, str]] = []     # (file, row group, date)
        self.rows = 0
        for date in dates:
            for f in lake.day_files("features", dataset, date):
                meta = parquet_file(f).metadata
                self.units += [(f, i, date) for i in range(meta.num_row_groups)]
                self.rows += meta.num_rows

    def __len__(self) -> int:
        return self.rows

    def _read(self, unit: tuple[Path, int, str]) -> tuple[np.ndarray, ...]:
        f, i, date = unit
        return _read(f, self.fields, f"dataset {self.dataset!r} day {date} file {f} row group {i}", i, self.widths)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        order = torch.randperm(len(self.units), generator=generator).tolist() if shuffle else range(len(self.units))
        pending: list[tuple[np.ndarray, ...]] = []
        held = 0
        for k in order:
            arrays = self._read(self.units[k])
            pending.append(arrays)
            held += arrays[0].shape[0]
            if held >= max(self.buffer_rows, batch_size):
                ids, label, group = (np.concatenate(x) for x in zip(*pending))
                perm = torch.randperm(ids.shape[0], generator=generator).numpy() if shuffle else np.arange(ids.shape[0])
                full = ids.shape[0] // batch_size * batch_size
                yield from _cut(ids, label, group, perm[:full], batch_size)
                rest = perm[full:]
                pending, held = [(ids[rest], label[rest], group[rest])], rest.size
        if held:
            ids, label, group = (np.concatenate(x) for x in zip(*pending))
            perm = torch.randperm(ids.shape[0], generator=generator).numpy() if shuffle else np.arange(ids.shape[0])
            yield from _cut(ids, label, group, perm, batch_size)


def _cut(ids: np.ndarray, label: np.ndarray, group: np.ndarray, perm: np.ndarray,
         batch_size: int) -> Iterator[Batch]:
    ids, label, group = ids[perm], label[perm], group[perm]        # one gather for the whole buffer
    for s in range(0, perm.size, batch_size):
        yield Batch(torch.from_numpy(ids[s:s + batch_size]), torch.from_numpy(label[s:s + batch_size]),
                    torch.from_numpy(group[s:s + batch_size]))


def estimate_bytes(lake: Lake, dataset: str, dates: list[str], n_fields: int) -> int:
    """In-memory size of the days as tensors, from Parquet footers only (no data read)."""
    rows = sum(parquet_file(f).metadata.num_rows for d in dates for f in lake.day_files("features", dataset, d))
    return rows * (8 * n_fields + 4 + 8)


def label_rate(lake: Lake, dataset: str, dates: list[str]) -> float:
    """Mean label (CTR) over the days, reading only the label column."""
    clicks = rows = 0
    for d in dates:
        for f in lake.day_files("features", dataset, d):
            label = read_table(f, columns=[LABEL]).column(LABEL)
            clicks, rows = clicks + (pc.sum(label).as_py() or 0), rows + len(label)
    return clicks / rows if rows else float("nan")


def open_days(lake: Lake, dataset: str, dates: list[str], *, budget_bytes: float = 4e9,
              buffer_rows: int = 1_000_000, fields: list[str] | None = None) -> FeatureTable | StreamingDays:
    """In memory when the days fit ``budget_bytes``, else streamed by row group."""
    fields = list(fields or Manifest.of(lake, dataset).fields)
    if estimate_bytes(lake, dataset, dates, len(fields) + sum(_widths(lake, dataset).values())) <= budget_bytes:
        return load_days(lake, dataset, dates, fields)
    return StreamingDays(lake, dataset, dates, fields, buffer_rows)


def split_days(days: list[str], *, train_days: int | None = None, dates: list[str] | None = None,
               valid_date: str | None = None) -> tuple[list[str], str, str | None]:
    """(train dates, valid date, test date or None) from the complete feature days.

    Default with days d1..dN: train d1..d(N-2), valid d(N-1), test dN (N = 2: train d1, valid d2).
    ``valid_date`` fixes the validation day (test = the next day); ``dates`` lists the training
    days (valid = the first day after them); ``train_days`` keeps the last N days before valid.
    """
    days = sorted(days)
    if valid_date is None:
        if dates:
            later = [d for d in days if d > max(dates)]
            if not later:
                raise ValueError(f"no feature day after the training days {dates} to validate on; give valid_date")
            valid_date = later[0]
        elif len(days) >= 2:
            valid_date = days[-2] if len(days) >= 3 else days[-1]
        else:
            raise ValueError(f"need at least 2 complete feature days (train + valid), found {days}")
    if valid_date not in days:
        raise ValueError(f"validation day {valid_date} is not a complete feature day (have {days})")
    after = [d for d in days if d > valid_date]
    test_date = after[0] if after else None
    if dates:
        unknown = [d for d in dates if d not in days]
        if unknown:
            raise ValueError(f"training days {unknown} are not complete feature days (have {days})")
        late = [d for d in dates if d >= valid_date]
        if late:
            raise ValueError(f"training days {late} are not before the validation day {valid_date}")
        train = sorted(dates)
    else:
        train = [d for d in days if d < valid_date]
        if train_days is not None:
            train = train[-train_days:] if train_days > 0 else []
    if not train:
        raise ValueError(f"no training days before the validation day {valid_date} (have {days})")
    return train, valid_date, test_date
