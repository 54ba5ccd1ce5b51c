"""Training layer: the model, one training step, evaluation, checkpoints and `train_run` (one run).

Imports effdata.spec and effdata.paths only; knows nothing of studies or corpora (a run is given its
tokens as a `RunData`)."""
