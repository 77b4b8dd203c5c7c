"""The daily retrain's training defaults: one source for ``flows.params.DAILY_TRAIN`` (the flows' and
the UI form's default) and the ``dea run`` / ``dea backfill`` help, importable without the stack.

A few epochs, early stopping on the window's last day; batches of 1024 at lr 3e-3 (4× the steps of
``TrainConfig``'s 4096: on the default world DEA's test AUC 0.7394 against 0.733 at 4096 / 1e-3,
beating the logistic baseline's 0.7341; benchmarks/results/dea_branches.md and the issue-21 note).
"""

DAILY_MODEL = "dea"
DAILY_TRAIN_FIELDS = {"epochs": 2, "patience": 1, "batch_size": 1024, "lr": 3e-3}
