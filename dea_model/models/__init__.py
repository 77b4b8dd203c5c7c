"""CTR models by name: ``build_model(name, n_fields, **hparams)``.

One file per model, composed from ``dea_model.layers``. To add one (AFM, FiBiNET, MemoNet, HSTU,
…): write ``models/<name>.py`` with a ``CTRModel`` subclass (``name``, ``Config``) and list it in
``REGISTRY`` below.
"""

from __future__ import annotations

from typing import Any

from .afm import AFM
from .autoint import AutoInt
from .base import CTRModel
from .dea import DEA
from .fibinet import FiBiNET
from .fm import FM
from .hstu import HSTU
from .memonet import MemoNet
from .mgdin import MGDIN
from .secn import SECN
from .transformer import Transformer

REGISTRY: dict[str, type[CTRModel]] = {cls.name: cls for cls in (DEA, Transformer, AutoInt, FM,
                                                                 AFM, FiBiNET, MemoNet, HSTU, SECN, MGDIN)}

__all__ = ["REGISTRY", "CTRModel", "available", "build_model", "saved_hparams", "DEA", "Transformer", "AutoInt", "FM",
           "AFM", "FiBiNET", "MemoNet", "HSTU", "SECN", "MGDIN"]


def available() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(REGISTRY)


def build_model(name: str, n_fields: int, bags=None, **hparams: Any) -> CTRModel:
    """The model ``name`` for ``n_fields`` input fields; unknown hyperparameters raise ValueError.
    ``bags``: the multi-valued fields [(field index, max_len, pooling)] (``CTRModel.use_bags``)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    model = REGISTRY[name](n_fields, **hparams)
    return model.use_bags(bags) if bags else model


def saved_hparams(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a saved ``name`` model, plus ``saved_without`` for those it predates."""
    cls = REGISTRY.get(name)
    return {**(cls.saved_without if cls else {}), **hparams}
