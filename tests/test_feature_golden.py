"""Every shipped dataset's first feature day is bit-identical to the pinned digest: IDs, labels and
groups of hash spec 1, as the feature stage wrote them before it was made faster (issue 20: the
compiled MurmurHash3 and bucket search, counts from codes). Regenerate the pins only with a new hash
spec version, or for a dataset whose raw rows change (``synthetic`` became the small world in issue
21, then a smaller one of mostly low-rank taste; ``synthetic_hard`` keeps the old world's pin):
``python tests/golden/feature_digests.py > tests/golden/feature_digests.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden.feature_digests import DATASETS, first_day_digest

PINNED = json.loads((Path(__file__).parent / "golden" / "feature_digests.json").read_text())
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize("name", DATASETS)
def test_first_feature_day_is_bit_identical_to_the_pinned_digest(name, tmp_path):
    if not name.startswith("synthetic") and not DATA.exists():
        pytest.skip(f"{DATA} is not here")
    assert first_day_digest(name, tmp_path) == PINNED[name]
