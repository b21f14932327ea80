"""Training: `train_run` (recipe.py) is the one training loop for every method; the modules beside it
hold what it is built from (batches, loss, checkpoints, metrics log, precision, multi-process launch)."""

from tunewright.run_summary import TrainingResult
from tunewright.train.batches import PadCollator
from tunewright.train.precision import resolve_precision
from tunewright.train.recipe import artifact_dir, encode_split, train_run

__all__ = ["PadCollator", "TrainingResult", "artifact_dir", "encode_split", "resolve_precision", "train_run"]
