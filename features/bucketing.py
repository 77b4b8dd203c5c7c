"""Quantile bucketing of dense fields: fit boundaries on a Dask dataframe, replay with searchsorted.

For a dense column with fitted boundaries ``b_0 < b_1 < ... < b_{m-1}`` (deduplicated), a value
``x`` falls in bucket ``k = #{i : b_i <= x}`` (``np.searchsorted(b, x, side="right")``), so
``k ∈ [0, m]``: ``-inf`` lands in bucket 0, ``+inf`` in bucket m, NaN is missing.

``log1p`` applies the symmetric ``sign(x)·log(1+|x|)`` first. Quantile buckets are invariant under
any increasing transform, so it changes only the scale of the stored boundaries (readable for
counts and prices) and the accuracy of approximate quantiles on heavy tails, not which rows share
a bucket — which is why it is safe to apply to fields with negative values (Criteo's I2).
"""

from __future__ import annotations

import numpy as np

from features.spec import DenseField


def symlog1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) · log1p(|x|)``: increasing, defined on all reals."""
    return np.sign(x) * np.log1p(np.abs(x))


class QuantileBucketizer:
    """scikit-learn-style: ``__init__`` stores, ``fit`` learns ``boundaries_``, ``transform`` replays.

    >>> import dask.dataframe as dd, pandas as pd
    >>> b = QuantileBucketizer([DenseField(name="x", buckets=4)])
    >>> b = b.fit(dd.from_pandas(pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8]}), npartitions=2))
    >>> b.transform("x", np.array([0.0, 4.5, np.inf, np.nan]))[0].tolist()
    [0, 2, 3, 0]
    """

    def __init__(self, fields: list[DenseField]):
        self.fields = list(fields)

    def fit(self, frame) -> "QuantileBucketizer":
        """Approximate quantiles of every dense column of a Dask dataframe, in one pass."""
        names = [f.name for f in self.fields]
        self.boundaries_: dict[str, list[float]] = {}
        if not names:
            return self
        prepared = frame[names].astype("float64").map_partitions(self._prepare_frame)
        prepared = prepared.replace([np.inf, -np.inf], np.nan)
        qs = {f.name: np.linspace(0, 1, f.buckets + 1)[1:-1] for f in self.fields}
        grid = np.unique(np.concatenate(list(qs.values())))
        quantiles = prepared.quantile(grid).compute()
        for f in self.fields:
            values = quantiles[f.name].loc[qs[f.name]].to_numpy(dtype="float64")
            if np.isnan(values).all():
                raise ValueError(f"dense field {f.name!r} is all missing (NaN) in the fit window; "
                                 "nothing to bucket — check the source or drop the field from the spec")
            self.boundaries_[f.name] = np.unique(values[~np.isnan(values)]).tolist()
        return self

    def _prepare_frame(self, df):
        df = df.copy()
        for f in self.fields:
            if f.log1p:
                df[f.name] = symlog1p(df[f.name].to_numpy(dtype="float64"))
        return df

    def transform(self, name: str, values) -> tuple[np.ndarray, np.ndarray]:
        """Bucket index (int64; 0 where missing) and missing mask (bool) of one column's values:
        ``np.searchsorted(boundaries, x, side="right")``, compiled (``features.kernels``)."""
        from features.kernels import bucket_index

        x = np.asarray(values, dtype="float64")
        field = self._field(name)
        if field.log1p:
            x = symlog1p(x)
        missing = np.isnan(x)
        buckets = np.empty(len(x), np.int64)
        bucket_index(np.asarray(self.boundaries_[name], dtype=np.float64), np.ascontiguousarray(x), buckets)
        return buckets, missing

    def n_buckets(self, name: str) -> int:
        return len(self.boundaries_[name]) + 1

    def _field(self, name: str) -> DenseField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no dense field {name!r}; known: {[f.name for f in self.fields]}")

    # --- JSON round trip (the manifest holds fitted state, never pickles) ---
    def to_dict(self) -> dict:
        return {f.name: {"boundaries": self.boundaries_[f.name], "log1p": f.log1p, "buckets": f.buckets}
                for f in self.fields}

    @classmethod
    def from_dict(cls, state: dict) -> "QuantileBucketizer":
        fields = [DenseField(name=n, buckets=s["buckets"], log1p=s["log1p"]) for n, s in state.items()]
        self = cls(fields)
        self.boundaries_ = {n: list(s["boundaries"]) for n, s in state.items()}
        return self
