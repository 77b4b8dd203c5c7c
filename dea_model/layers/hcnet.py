"""Multi-hash codebook memorising every 2nd-order cross feature (MemoNet's HCNet, arXiv 2211.01334).

For every unordered field pair p = (i, j), i < j (P = n(n−1)/2 cross features per sample):

    a^m_p = MurmurHash3(le64(x_i) ‖ le64(x_j), s_m) mod s          m = 1..k hash functions
    c_p   = [C[a^1_p]; …; C[a^k_p]]                                 (B, P, k·d_c)   k codewords
    m_p   = W_r c_p                                                 (B, P, d)       linear memory restoring

The hash is the platform's combo-ID hash (``layers.hashing.combo_addresses``, bit-exact with
``features.hashing.combo_hash``), seeds s_m = ``codebook_seeds(seed, k)``. The feature IDs are
already field-salted hashes, so the pair key needs no field prefix (MemoNet's "fieldIdx_value").

``mode="share"`` (MemoNet's default "hash-share"): the k hashes address one codebook C ∈ R^{s×d_c};
``"private"``: hash m addresses its own codebook C^m. Init N(0, 0.01²) (MemoNet ``init_std``). Two
cross features collide on every codeword only with probability ≈ 1/s^k, and the restoring
matrix W_r ∈ R^{d×k·d_c} (no bias) lets the k codewords of a pair combine into a vector no single
collided row holds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from features.hashing import HASH_SEED

from .pairs import unordered_pairs
from .combo import Codebooks
from .embedding import gather_rows
from .hashing import codebook_seeds, combo_addresses, to_int32

__all__ = ["HASH_MODES", "MultiHashCodebook"]

HASH_MODES = ("share", "private")


class MultiHashCodebook(nn.Module):
    """ids (B, n) int64 → restored cross-feature embeddings m (B, P, d), pairs i < j row-major.

    Args:
        n_fields: n.   dim: codeword size d_c.   size: rows per codebook s.   hashes: k.
        out_dim: d of the restored vectors.   mode: "share" | "private".   seed: base hash seed.
    """

    def __init__(self, n_fields: int, dim: int, size: int, hashes: int, out_dim: int, mode: str = "share",
                 seed: int = HASH_SEED):
        super().__init__()
        if mode not in HASH_MODES:
            raise ValueError(f"multi-hash codebook mode must be one of {HASH_MODES}, got {mode!r}")
        if hashes < 1:
            raise ValueError(f"multi-hash codebook needs hashes ≥ 1, got {hashes}")
        self.size, self.hashes, self.mode = size, hashes, mode
        self.codebook = Codebooks(1 if mode == "share" else hashes, size, dim)
        left, right = unordered_pairs(n_fields)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        seeds = [to_int32(s) for s in codebook_seeds(seed, hashes)]
        self.register_buffer("seeds", torch.tensor(seeds, dtype=torch.int32))
        self.restore = nn.Linear(hashes * dim, out_dim, bias=False)      # W_r (linear memory restoring)

    @torch.no_grad()
    def addresses(self, ids: Tensor) -> Tensor:
        """(k, B, P) int64 rows of the codebook table (offset m·s per hash in "private" mode)."""
        addr = combo_addresses(ids, self.left, self.right, self.seeds, self.size)
        return addr.remainder_(self.size) if self.mode == "share" else addr

    def forward(self, ids: Tensor) -> Tensor:
        c = gather_rows(self.codebook.weight, self.addresses(ids))            # (k, B, P, d_c)
        return self.restore(c.permute(1, 2, 0, 3).flatten(2))                 # (B, P, d)

    def extra_repr(self) -> str:
        return f"pairs={self.left.numel()}, hashes={self.hashes}, mode={self.mode!r}"
