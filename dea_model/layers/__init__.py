"""The layer library, by role: hashing and embeddings, pair scores, attention, fusion, blocks."""

from .attention import CollapseAvoiding, FieldAttention, safe_softmax
from .bags import PAD_ID, BagPooling
from .combo import GATE_ON, Codebooks, ComboIDScores
from .embedding import FieldEmbedding, collision_rate
from .fusion import FUSIONS, ScoreFusion
from .hashing import codebook_seeds, combo_addresses, combo_hash
from .interaction import fm_interaction
from .mlp import MLP
from .pairs import DIAG_MODES, apply_diagonal, mirror_to_square, ordered_pairs, pairs_to_square, unordered_pairs

__all__ = [
    "DIAG_MODES", "FUSIONS", "GATE_ON", "MLP", "PAD_ID", "BagPooling", "Codebooks", "CollapseAvoiding",
    "ComboIDScores", "FieldAttention", "FieldEmbedding", "ScoreFusion", "apply_diagonal", "codebook_seeds",
    "collision_rate", "combo_addresses", "combo_hash", "fm_interaction", "mirror_to_square", "ordered_pairs",
    "pairs_to_square", "safe_softmax", "unordered_pairs",
]
