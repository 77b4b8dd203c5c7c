"""The daily retrain's training defaults: one source for ``flows.params.DAILY_TRAIN`` (the flows' and
the UI form's default) and the ``dea run`` / ``dea backfill`` help, importable without the stack.

A few epochs, early stopping on the window's last day; batches of 1024 at lr 3e-3 (4× the steps of
``TrainConfig``'s 4096: on the default world DEA's test AUC went from 0.7331, under the logistic
baseline's 0.7341, to 0.7394, above it; measured before the world lost its drift, see the README);
a training vocabulary (``min_id_count`` 1: an ID the training days never saw is its field's OOV ID,
not a hashed row that is noise or another ID's; MovieLens' cold-start test day gains 0.0124 AUC,
``benchmarks/results/quality_logistic_seeds.md``).
"""

DAILY_MODEL = "dea"
DAILY_TRAIN_FIELDS = {"epochs": 2, "patience": 1, "batch_size": 1024, "lr": 3e-3, "min_id_count": 1}
