"""What every CTR model shares: a typed config of hyperparameters, input checks, parameter groups.

A model is ``Model(n_fields, **hparams)``: the hyperparameters are the fields of the model's
``Config`` dataclass (defaults there), ``model.hparams`` is that config as a JSON-ready dict and
``build_model(model.name, model.n_fields, **model.hparams)`` rebuilds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from .. import calibration, vocabulary
from ..layers.bags import check_bags
from ..layers.embedding import FieldEmbedding

__all__ = ["CTRModel", "check_choice", "check_positive"]


def check_choice(model: str, key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"model {model!r}: {key}={value!r} is not one of {tuple(choices)}")


def check_positive(model: str, **values: int | float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"model {model!r}: {key} must be > 0, got {value!r}")


def _json_ready(value: Any) -> Any:
    return [_json_ready(v) for v in value] if isinstance(value, (tuple, list)) else value


def config_hparams(cfg: Any) -> dict[str, Any]:
    """A model's ``Config`` instance as the JSON-ready dict :attr:`CTRModel.hparams` returns."""
    return {k: _json_ready(v) for k, v in dataclasses.asdict(cfg).items()}


class CTRModel(nn.Module):
    """Base class: ``forward(ids (B, n) int64) -> logits (B,)`` (pre-sigmoid); with multi-valued
    fields ids (B, n + W), their elements after the n field columns (:meth:`use_bags`).

    Subclasses set ``name`` and ``Config`` (a dataclass whose ``__post_init__`` validates values).
    Modules with ``is_embedding = True`` (hashed embedding tables, codebooks) hold the
    parameters that :meth:`param_groups` puts in the "embedding" group. Every input passes
    through the model's training vocabulary (``dea_model.vocabulary``: rare IDs → one OOV ID per
    field) and every output through its logit calibration a·z + b (``dea_model.calibration``);
    both are hooks over buffers, empty / identity until the trainer fits them.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: hyperparameters added after models of this class were saved, with the value that reproduces
    #: a saved model that lacks them (their default may now differ); see :func:`models.saved_hparams`
    saved_without: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_fields: int, **hparams: Any):
        super().__init__()
        if not isinstance(n_fields, int) or n_fields < 2:
            raise ValueError(f"model {self.name!r} needs n_fields ≥ 2 (an int), got {n_fields!r}")
        known = {f.name for f in dataclasses.fields(self.Config)}
        for key in hparams:
            if key not in known:
                raise ValueError(f"model {self.name!r} has no hyperparameter {key!r}; "
                                 f"known: {', '.join(sorted(known))}")
        self.n_fields = n_fields
        self.cfg = self.Config(**hparams)
        vocabulary.install(self)       # rare IDs → one OOV ID per field, fitted by the trainer (off until then)
        calibration.install(self)      # logit → a·logit + b, fitted by the trainer (identity until then)

    bags: list = []              # multi-valued fields: [(field index, max_len, pooling)], see use_bags
    bag_width = 0

    @property
    def hparams(self) -> dict[str, Any]:
        """The hyperparameters, defaults filled in, JSON-serialisable (tuples as lists); with
        multi-valued fields also ``bags`` (what ``build_model`` needs to rebuild the model)."""
        return config_hparams(self.cfg) | ({"bags": [list(b) for b in self.bags]} if self.bags else {})

    def use_bags(self, bags) -> "CTRModel":
        """Take ids (B, n + W) whose element columns pool into the multi-valued fields ``bags``
        (``dea_model.layers.bags``): every ``FieldEmbedding`` of the model pools them."""
        self.bags = check_bags(bags, self.n_fields)
        self.bag_width = sum(w for _, w, _ in self.bags)
        for module in self.modules():
            if isinstance(module, FieldEmbedding):
                module.use_bags(self.bags)
        return self

    def field_ids(self, ids: Tensor) -> Tensor:
        """(B, n) one ID per field (a bag field's bag ID) of the input ids (B, n + W)."""
        return ids[:, :self.n_fields]

    def check_ids(self, ids: Tensor) -> None:
        width = self.n_fields + self.bag_width
        if ids.dim() != 2 or ids.shape[1] != width:
            raise ValueError(f"model {self.name!r} expects ids of shape (B, {width}), got {tuple(ids.shape)}")

    def output_bias(self) -> nn.Parameter | None:
        """The bias added last to the logit: the output layer of a ``head`` MLP, or a scalar ``bias``.

        The trainer starts it at the training CTR's log-odds, log(p / (1 − p)), so the first steps
        are not spent learning the base rate (with a 0 start, FM predicted ~10× the CTR after an epoch).
        """
        head = getattr(self, "head", None)
        if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear) and head[-1].out_features == 1:
            return head[-1].bias
        bias = getattr(self, "bias", None)
        return bias if isinstance(bias, nn.Parameter) and bias.numel() == 1 else None

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters of embedding tables and codebooks (modules marked ``is_embedding``)."""
        return [p for m in self.modules() if getattr(m, "is_embedding", False) for p in m.parameters(recurse=False)]

    def param_groups(self, weight_decay: float = 0.0, embedding_weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups: "embedding" (tables and codebooks, ``embedding_weight_decay``),
        "decay" (other weight matrices, ``weight_decay``), "no_decay" (biases, norms, scalars: 0).

        Empty groups are left out. Usage: ``torch.optim.AdamW(model.param_groups(1e-5, 1e-6), lr=1e-3)``.
        """
        embedding = {id(p) for p in self.embedding_parameters()}
        groups: dict[str, list[nn.Parameter]] = {"embedding": [], "decay": [], "no_decay": []}
        for name, p in self.named_parameters():
            key = ("embedding" if id(p) in embedding
                   else "decay" if p.dim() >= 2 and not name.endswith("bias") else "no_decay")
            groups[key].append(p)
        decay = {"embedding": embedding_weight_decay, "decay": weight_decay, "no_decay": 0.0}
        return [{"name": k, "params": v, "weight_decay": decay[k]} for k, v in groups.items() if v]

    def extra_repr(self) -> str:
        return f"n_fields={self.n_fields}"
