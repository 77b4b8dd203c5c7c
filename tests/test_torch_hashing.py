"""The torch combo hash is bit-exact with the NumPy spec implementation and with mmh3."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dea_model.layers.hashing import codebook_seeds, combo_addresses, combo_hash, to_int32
from features.hashing import HASH_SEED, combo_hash as numpy_combo_hash, combo_hash_reference

INT64 = st.integers(-(2**63), 2**63 - 1)
EDGES = st.sampled_from([0, -1, 1, -(2**63), 2**63 - 1, 2**32 - 1, 2**32, -(2**32), 2**31, -(2**31)])
IDS = st.one_of(EDGES, INT64)
SEEDS = st.one_of(st.sampled_from([0, 1, HASH_SEED, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))

# MurmurHash3_x86_32(le64(a) || le64(b), seed) from mmh3.hash(..., signed=False): pinned.
GOLDEN = [
    (0, 0, 0, 2167721464),
    (1, 2, 0, 3381608592),
    (-1, -1, 233447461, 2667390665),
    (-(2**63), 2**63 - 1, 1, 786816234),
    (2**63 - 1, -(2**63), 0xFFFFFFFF, 2907284299),
    (1234567890123456789, -987654321987654321, 42, 84055004),
]


@pytest.mark.parametrize("a,b,seed,expected", GOLDEN)
def test_golden_vectors(a, b, seed, expected):
    assert combo_hash_reference(a, b, seed) == expected
    assert combo_hash(torch.tensor([a]), torch.tensor([b]), seed).tolist() == [expected]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(IDS, IDS), min_size=1, max_size=64), SEEDS)
def test_equals_numpy_spec(pairs, seed):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    got = combo_hash(torch.from_numpy(a), torch.from_numpy(b), seed)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), numpy_combo_hash(a, b, seed).astype(np.int64))
    assert got[0].item() == combo_hash_reference(int(a[0]), int(b[0]), seed)


def test_many_random_pairs_and_broadcasting():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(-(2**63), 2**63 - 1, (5000, 1), generator=g)
    b = torch.randint(-(2**63), 2**63 - 1, (1, 7), generator=g)
    got = combo_hash(a, b, HASH_SEED)
    assert got.shape == (5000, 7)
    np.testing.assert_array_equal(got.numpy(), numpy_combo_hash(a.numpy(), b.numpy(), HASH_SEED).astype(np.int64))
    assert int(got.min()) >= 0 and int(got.max()) < 2**32
    assert int(got.max()) >= 2**31  # the upper half of the uint32 range comes out non-negative


@pytest.mark.parametrize("size,chunk_pairs", [(2**12, None), (1000, 250), (2**20, 2**19)])
def test_pair_addresses_match_spec(size, chunk_pairs):
    """Every seed's addresses equal the NumPy hash, all at once or in blocks of 2 samples (the last short)."""
    g = torch.Generator().manual_seed(size)
    n = 6
    ids = torch.randint(-(2**63), 2**63 - 1, (9, n), generator=g)
    ids[0] = torch.tensor([0, -1, -(2**63), 2**63 - 1, 5, 5])
    left, right = torch.nonzero(torch.ones(n, n, dtype=torch.bool), as_tuple=True)
    seeds = codebook_seeds(HASH_SEED, 3)
    addr = combo_addresses(ids, left, right, torch.tensor([to_int32(s) for s in seeds], dtype=torch.int32), size,
                           chunk_pairs)
    assert addr.shape == (3, 9, n * n) and addr.dtype == torch.int32
    for m, seed in enumerate(seeds):
        ref = numpy_combo_hash(ids[:, left].numpy(), ids[:, right].numpy(), seed).astype(np.int64) % size + m * size
        np.testing.assert_array_equal(addr[m].long().numpy(), ref)


@pytest.mark.parametrize("chunk_pairs", [None, 2**19])
def test_pair_addresses_of_an_empty_batch(chunk_pairs):
    left, right = torch.tensor([0, 1]), torch.tensor([1, 0])
    seeds = torch.tensor([to_int32(s) for s in codebook_seeds(HASH_SEED, 3)], dtype=torch.int32)
    addr = combo_addresses(torch.empty(0, 2, dtype=torch.long), left, right, seeds, 64, chunk_pairs)
    assert addr.shape == (3, 0, 2) and addr.dtype == torch.int32


def test_codebook_seeds_distinct_and_stable():
    seeds = codebook_seeds(HASH_SEED, 4)
    assert seeds[0] == HASH_SEED and len(set(seeds)) == 4
    assert all(0 <= s < 2**32 for s in seeds)
    assert seeds[1] == (HASH_SEED + 0x9E3779B9) & 0xFFFFFFFF
