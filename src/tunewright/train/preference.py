"""Preference training (dpo, kto, orpo) on trl's trainers, used as they are, with the same watchers as SFT:
checkpoints and --resume, early stopping (on the validation preference accuracy), metrics.jsonl (loss,
reward margin, chosen / rejected log-probabilities) and the progress bar. The reference is never a second
model: a fresh adapter is disabled for the reference pass, and an SFT adapter (`method.init_from`) gets a
frozen copy as a second adapter on the same base (trl does both when given a PEFT model and no ref_model)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PrinterCallback, Trainer, TrainerCallback, set_seed

from tunewright.chat import encode_example, with_system_prompt
from tunewright.config import Config
from tunewright.errors import ConfigError, DataError
from tunewright.methods import METHODS, load_base, preference
from tunewright.modeling import CausalLM, load_tokenizer, resolve_base_model
from tunewright.records import Preference
from tunewright.runs import RunPaths
from tunewright.train.batches import PadCollator
from tunewright.train.precision import Precision
from tunewright.train.watch import TrainingWatch

if TYPE_CHECKING:
    from tunewright.run_summary import TrainingResult

ACCURACY_KEY = "eval_rewards/accuracies"  # what trl logs for the share of pairs ranked the right way


def train_preference_run(config: Config, run: RunPaths, show_progress: bool = True, resume: bool = False,
                         callbacks: Sequence[TrainerCallback] = ()) -> TrainingResult:
    """Train the run's preference splits with config.method (dpo, kto or orpo); save the adapter."""
    from tunewright.train.recipe import save_trained

    started = time.perf_counter()
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    method = METHODS[config.method.name]
    unpaired = method.facts.preference == "unpaired"
    train_split = run.load_preference_split("train")
    train_rows = trainer_rows(config, train_split, unpaired)
    val_rows = trainer_rows(config, run.load_preference_split("val"), unpaired)
    set_seed(config.training.seed)
    base = load_base(model_dir, method)
    model = preference.from_sft_run(base, config.method.init_from) if config.method.init_from else base
    precision = choose_preference_precision(config, model_dir, model, tokenizer, train_split)
    if show_progress:
        print(f"precision: {precision.name} ({precision.reason})", file=sys.stderr)
    watch = TrainingWatch.start(config, run, resume, show_progress, callbacks,
                                accuracy_key=None if unpaired else ACCURACY_KEY)
    trainer = build_trainer(config, run, model, tokenizer, train_rows, val_rows, precision.name, watch.callbacks)
    trainer.remove_callback(PrinterCallback)
    watch.train(trainer, run)
    tuned: CausalLM = trainer.model
    watch.best.restore_best(tuned)
    if "ref" in getattr(tuned, "peft_config", {}):
        tuned.delete_adapter("ref")  # trl's frozen copy of the SFT adapter: the reference, not the result

    return save_trained(config, run, trainer, watch, tuned, tokenizer, precision, started)


def choose_preference_precision(config: Config, model_dir: Path, model: CausalLM, tokenizer: Any,
                                rows: list[Preference]) -> Precision:
    """training.precision, with 'auto' measured as for SFT (recipe.choose_precision) on a real batch of
    the training pairs, every answer of each (trl runs chosen and rejected as one batch; its reference pass
    is a forward of the same shape in the same precision). Gradients flow through the activations only, as
    they do to an adapter: the fresh-adapter case has no adapter yet (trl adds it), and the weights stay
    untouched either way."""
    from tunewright.train.recipe import choose_precision

    encoded = []
    for row in rows[: config.training.batch_size]:
        for answer in (row.chosen, row.rejected):
            if answer is not None:
                ids = encode_example(tokenizer, row.with_answer(answer), config.task.system_prompt,
                                     config.training.max_seq_len)
                encoded.append({"input_ids": ids.input_ids, "labels": ids.labels})
    batch = PadCollator(tokenizer.pad_token_id)(encoded)
    with activation_gradients_only(model):
        return choose_precision(config, model_dir, model, batch, METHODS[config.method.name])


@contextmanager
def activation_gradients_only(model: CausalLM) -> Iterator[None]:
    """Every weight frozen and the input embeddings' output requiring a gradient, so backward runs through
    every layer as it does for an adapter; the weights' own flags are restored afterwards."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    hook = model.get_input_embeddings().register_forward_hook(lambda _module, _inputs, output: output.requires_grad_())
    try:
        yield
    finally:
        hook.remove()
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def trainer_rows(config: Config, rows: list[Preference], unpaired: bool) -> Any:
    """trl's conversational rows: prompt (with the task's system prompt) and chosen / rejected turns, or,
    for KTO, one completion with label true / false (a pair gives one of each)."""
    from datasets import Dataset

    records: list[dict[str, Any]] = []
    for row in rows:
        prompt = with_system_prompt(row.prompt, config.task.system_prompt)
        if unpaired:
            records += [{"prompt": prompt, "completion": [{"role": "assistant", "content": answer}], "label": good}
                        for answer, good in ((row.chosen, True), (row.rejected, False)) if answer is not None]
        elif row.paired:
            records.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": row.chosen}],
                            "rejected": [{"role": "assistant", "content": row.rejected}]})
        else:
            raise DataError(f"{row.source}: {config.method.name} trains on pairs, and this row has one answer "
                            "(a KTO row); use method.name=kto, or give each prompt a chosen and a rejected answer")
    if not records:
        raise DataError("a preference split is empty; add preference rows")
    return Dataset.from_list(records)


def build_trainer(config: Config, run: RunPaths, model: CausalLM, tokenizer: Any, train_rows: Any, val_rows: Any,
                  precision: str, callbacks: list[Any]) -> Trainer:
    """The trl trainer for config.method, given the base (a fresh adapter: `peft_config`) or a PeftModel."""
    from peft import PeftModel

    name = config.method.name
    peft_config = None if isinstance(model, PeftModel) else preference.adapter_config(config.method)
    common: dict[str, Any] = {"model": model, "args": preference_arguments(config, run, precision),
                              "train_dataset": train_rows, "eval_dataset": val_rows, "processing_class": tokenizer,
                              "callbacks": callbacks, "peft_config": peft_config}
    if name == "dpo":
        from trl.trainer.dpo_trainer import DPOTrainer

        return DPOTrainer(**common)
    if name == "kto":
        # trl 1.x: promoted from trl.experimental.kto to the stable API (trl.KTOTrainer)
        from trl.trainer.kto_trainer import KTOTrainer

        return KTOTrainer(**common)
    return orpo_trainer(common)


def orpo_trainer(common: dict[str, Any]) -> Trainer:
    """trl's ORPOTrainer, subclassed only to count the tokens it trains on: its batches (chosen_... and
    rejected_... tensors) have no `input_ids`, so Trainer's own count (include_num_input_tokens_seen)
    finds nothing to count. get_batch_samples is the Trainer hook that sees each training batch (and only
    training batches; batches skipped on resume are not fetched through it)."""
    # trl 1.x moved ORPO to trl.experimental.orpo (the old `from trl import ORPOTrainer` is gone)
    from trl.experimental.orpo import ORPOTrainer

    class TokenCountingORPOTrainer(ORPOTrainer):
        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
            batches, items = super().get_batch_samples(epoch_iterator, num_batches, device)
            for batch in batches:
                tokens = batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum()
                self.state.num_input_tokens_seen += int(self.accelerator.gather(tokens.to(self.args.device)).sum())
            return batches, items

    return TokenCountingORPOTrainer(**common)


def preference_arguments(config: Config, run: RunPaths, precision: str) -> Any:
    """The only place DPOConfig / KTOConfig / ORPOConfig are built: the SFT run's TrainingArguments settings,
    plus beta and the sequence length."""
    from tunewright.train.recipe import training_settings

    settings = training_settings(config, run, precision)
    del settings["prediction_loss_only"]  # trl's trainers compute their evaluation metrics themselves
    if config.method.name == "orpo":
        settings["include_num_input_tokens_seen"] = "no"  # counted by orpo_trainer (its batches have no input_ids)
    # trl turns gradient checkpointing on by default; the SFT loop does not use it, and on CPU it only adds a
    # second forward pass
    settings.update(beta=config.method.beta, max_length=config.training.max_seq_len, gradient_checkpointing=False)
    name = config.method.name
    if config.method.sft_weight and name != "dpo":
        raise ConfigError(f"method.sft_weight: only dpo adds an SFT loss ({name} has its own); remove it or use dpo")
    if name == "dpo":
        from trl.trainer.dpo_config import DPOConfig

        if config.method.sft_weight:  # trl combines the losses with these weights (its 'sft' term is RPO's NLL)
            settings.update(loss_type=["sigmoid", "sft"], loss_weights=[1.0, config.method.sft_weight])
        return DPOConfig(**settings)
    if name == "kto":
        from trl.trainer.kto_config import KTOConfig

        return KTOConfig(**settings)
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(**settings)
