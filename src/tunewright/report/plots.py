"""The loss curve: train loss per logged step, validation loss per evaluation, the kept best step and
the early-stop point marked; drawn to PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from tunewright.run_summary import TrainingResult
from tunewright.runs import RunPaths, read_jsonl, write_bytes


def loss_curve_png(metrics: list[dict[str, Any]], best_step: int | None, stopped_at: int | None = None) -> bytes:
    """PNG bytes of the loss curve for metrics.jsonl rows; `stopped_at` marks where early stopping ended."""
    # Imported here so `import tunewright.report` stays light; the Agg canvas needs no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [row for row in metrics if row["train_loss"] is not None]
    val = [row for row in metrics if row["val_loss"] is not None]
    figure = Figure(figsize=(7.5, 3.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot([row["step"] for row in train], [row["train_loss"] for row in train],
                  color="#4c78a8", linewidth=1.4, label="train loss")
    if val:
        axes.plot([row["step"] for row in val], [row["val_loss"] for row in val],
                  color="#e45756", marker="o", markersize=4, linewidth=1.4, label="validation loss")
    if best_step is not None:
        axes.axvline(best_step, color="#54a24b", linestyle="--", linewidth=1.2, label="best (kept)")
    if stopped_at is not None:
        axes.axvline(stopped_at, color="#b279a2", linestyle=":", linewidth=1.4, label="early stop")
    axes.set_xlabel("training step")
    axes.set_ylabel("loss")
    axes.set_title("Loss during training")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_loss_plot(run: RunPaths) -> None:
    """Draw run.loss_plot from the run's metrics.jsonl and training_result.json."""
    training = TrainingResult.read(run.training_result)
    stopped_at = training.steps if training.stopped_early else None
    write_bytes(run.loss_plot, loss_curve_png(read_jsonl(run.metrics), training.best_step, stopped_at))


PREFERENCE_CURVES = (("reward_margin", "reward margin"), ("chosen_logp", "chosen log-prob"),
                     ("rejected_logp", "rejected log-prob"))


def preference_curves_png(metrics: list[dict[str, Any]]) -> bytes:
    """PNG bytes of a preference run's curves: reward margin (left) and the chosen / rejected answers'
    log-probabilities (right), train per logged step and validation per evaluation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), dpi=110)
    FigureCanvasAgg(figure)
    margin, logps = figure.subplots(1, 2)
    for key, label in PREFERENCE_CURVES:
        axes = margin if key == "reward_margin" else logps
        for prefix, style in (("train_", "-"), ("val_", "o-")):
            rows = [row for row in metrics if row.get(prefix + key) is not None]
            if rows:
                axes.plot([row["step"] for row in rows], [row[prefix + key] for row in rows], style,
                          markersize=4, linewidth=1.2, label=f"{prefix.rstrip('_')} {label}")
    for axes, title in ((margin, "Reward margin (chosen - rejected)"), (logps, "Answer log-probabilities")):
        axes.set_xlabel("training step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_preference_plot(run: RunPaths) -> None:
    """Draw preference_curves.png beside the loss curve from the run's metrics.jsonl."""
    write_bytes(run.loss_plot.with_name("preference_curves.png"), preference_curves_png(read_jsonl(run.metrics)))
