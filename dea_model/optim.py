"""Optimizers for CTR models: fused Adam/AdamW on the network, lazy (row-sparse) Adam on the tables.

A batch of B rows looks up only B·n rows of the embedding tables (n·m rows in all: 2.5 M for
Criteo's 39 fields at m = 2¹⁶). A dense optimizer zero-fills, accumulates and steps every row of
every table each step; with ``TrainConfig.sparse_embeddings`` the tables' gradients are sparse
(``FieldEmbedding.sparse`` / ``nn.Embedding.sparse``) and ``torch.optim.SparseAdam`` steps only the
rows looked up (lazy Adam, as TF's LazyAdam and TorchRec's row-wise optimizers: a row's moments and
weight move only in the steps that use it). On CPU (1 thread, B = 1024, 39 Criteo fields, 2¹⁶ rows
per field) an AutoInt step went from 264 to 190 ms, and at 2¹⁸ rows per field dense tables made it
3.7× slower (benchmarks/train_throughput.py sweeps table sizes). Frappe test AUC did not suffer
(DEA 0.939 → 0.941, 3 seeds; benchmarks/results/quality_frappe_movielens.md).

Weight decay on sparse tables touches the looked-up rows only and keeps the optimizer's meaning
(λ = ``embedding_weight_decay``): with ``adam`` it is L2 added to the rows' gradients, g_r + λ·w_r;
with ``adamw`` it is decoupled, w_r ← w_r·(1 − lr·λ) before the Adam step.
Combo-ID codebooks stay dense when a batch has at least as many pairs as a codebook has rows
(Criteo: a batch of 1024 has 1.5 M pairs for 2¹⁸ rows, and one pass over the whole table serves
them all, layers/combo.py); with fewer (few fields: MovieLens' 2) they are row-sparse too, and
their weight decay then touches the looked-up rows only. MovieLens' shape (2 fields, B = 4096,
s = 2¹⁸, CPU, 1 thread): 194 → 134 ms and 211 → 154 ms per step in two runs of an alternating A/B.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dea_model.config import TrainConfig

__all__ = ["param_groups", "make_optimizer", "DenseSparseAdam", "clip_grad_norm", "sparse_tables"]


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups, each with its weight decay: "codebook", "embedding", "decay", "no_decay".

    Codebooks are parameters named ``*codebook*``; embeddings are the rest of
    ``model.embedding_parameters()`` (``CTRModel``: tables marked ``is_embedding``), or of the
    ``nn.Embedding`` modules for other models; dense weights (>= 2 dims) get ``weight_decay``;
    biases (whatever their shape, e.g. DEA's per-head (H, 1, n) fusion bias), norms and scalars none.
    """
    if hasattr(model, "embedding_parameters"):
        tables = {id(p) for p in model.embedding_parameters()}
    else:
        tables = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    groups: dict[str, list[nn.Parameter]] = {"codebook": [], "embedding": [], "decay": [], "no_decay": []}
    for name, p in model.named_parameters():
        key = ("codebook" if "codebook" in name else "embedding" if id(p) in tables
               else "decay" if p.dim() >= 2 and not name.endswith("bias") else "no_decay")
        groups[key].append(p)
    decay = {"codebook": cfg.codebook_weight_decay, "embedding": cfg.embedding_weight_decay,
             "decay": cfg.weight_decay, "no_decay": 0.0}
    return [{"name": k, "params": ps, "weight_decay": decay[k]} for k, ps in groups.items() if ps]


#: DEA's codebooks get row-sparse gradients and lazy Adam only when a training batch's pairs are at
#: most this share of a codebook's rows (B·P ≤ s/8). Measured (CPU, 1 thread, s = 2¹⁸): MovieLens
#: (2 fields, B·P/s ≤ 3%) steps 1.4× faster at equal quality; 3 fields at B = 4096 (9%) 1.17×;
#: Frappe at B = 1024 (35%) no faster, and lazy Adam cost 0.0015 test AUC against dense Adam.
SPARSE_CODEBOOK_SHARE = 1 / 8


def sparse_tables(model: nn.Module, enable: bool = True, batch_size: int | None = None) -> list[nn.Parameter]:
    """Switch the model's embedding tables to row-sparse gradients (or back); returns the sparse weights.

    Tables are the modules with a ``sparse`` switch: ``FieldEmbedding`` and ``nn.Embedding``, and
    DEA's Combo-ID codebooks when a training batch of ``batch_size`` rows looks up at most
    ``SPARSE_CODEBOOK_SHARE`` of a codebook's rows (B·P ≤ s/8; otherwise they stay dense).
    """
    from dea_model.layers import ComboIDScores, FieldEmbedding

    tables = [m for m in model.modules() if isinstance(m, (FieldEmbedding, nn.Embedding))]
    for m in tables:
        m.sparse = enable
    for m in model.modules():
        if isinstance(m, ComboIDScores):
            m.codebooks.sparse = (enable and batch_size is not None
                                  and m.batch_pairs(batch_size) <= SPARSE_CODEBOOK_SHARE * m.size)
            if m.codebooks.sparse:
                tables.append(m.codebooks)
    return [m.weight for m in tables] if enable else []


class DenseSparseAdam:
    """Adam/AdamW (fused where possible) for dense parameters + ``SparseAdam`` for row-sparse tables.

    Has the optimizer interface the trainer uses: ``zero_grad``, ``step``, ``param_groups``,
    ``state_dict`` / ``load_state_dict``.
    """

    def __init__(self, dense: torch.optim.Optimizer | None, sparse: torch.optim.SparseAdam, decoupled: bool):
        self.dense, self.sparse, self.decoupled = dense, sparse, decoupled
        self.optimizers = [o for o in (dense, sparse) if o is not None]

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.sparse.param_groups:
            decay = group["weight_decay"]
            for p in group["params"]:
                if not decay or p.grad is None:
                    continue
                p.grad = p.grad.coalesce()                      # SparseAdam then skips its own coalesce
                rows, values = p.grad.indices()[0], p.grad.values()
                if self.decoupled:
                    p.index_copy_(0, rows, p.index_select(0, rows).mul_(1.0 - group["lr"] * decay))
                else:
                    values.add_(p.index_select(0, rows), alpha=decay)
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict() if self.dense else None, "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.dense is not None:
            self.dense.load_state_dict(state["dense"])
        self.sparse.load_state_dict(state["sparse"])


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | DenseSparseAdam:
    """Adam or AdamW over :func:`param_groups`, the fused kernel where the parameters allow it;
    with ``cfg.sparse_embeddings`` the tables switch to sparse gradients and get ``SparseAdam``.

    (Fused Adam steps a 41 M-parameter table about 4× faster than the for-each one on CPU.)
    """
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    sparse = {id(p) for p in sparse_tables(model, cfg.sparse_embeddings, cfg.batch_size)}
    dense_groups, sparse_groups = [], []
    for group in param_groups(model, cfg):
        for params, out in (([p for p in group["params"] if id(p) not in sparse], dense_groups),
                            ([p for p in group["params"] if id(p) in sparse], sparse_groups)):
            if params:
                out.append({**group, "params": params})
    params = [p for g in dense_groups for p in g["params"]]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    dense = cls(dense_groups, lr=cfg.lr, fused=fused or None) if dense_groups else None
    if not sparse_groups:
        return dense
    return DenseSparseAdam(dense, torch.optim.SparseAdam(sparse_groups, lr=cfg.lr), cfg.optimizer == "adamw")


def clip_grad_norm(parameters, max_norm: float) -> Tensor:
    """``nn.utils.clip_grad_norm_`` that also takes sparse gradients (coalesced, values clipped)."""
    grads = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())
        else:
            grads.append(p.grad)
    total = torch.nn.utils.get_total_norm(grads)
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total
