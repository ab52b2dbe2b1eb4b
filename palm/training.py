"""Train one policy: a LoRA adapter fine-tuned with trl's GRPO for one weight vector.

One reward function per objective and `reward_weights = w`, so the policy maximises
the scalarised reward `w · r`. The adapter and its training log are published to the
store in one atomic folder; a second run finds it and trains nothing.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from palm import builds
from palm.store import Store

log = logging.getLogger(__name__)

# Called after each optimisation step with (step, total_steps, metrics).
Progress = Callable[[int, int, dict[str, float]], None]


def train_policy(
    store: Store, build: str, policy: str, progress: Progress | None = None
) -> dict[str, Any]:
    """Fine-tune the adapter of `policy` in `build`, unless the store has it."""
    adapter = builds.adapter_path(build, policy)
    if store.has_dir(adapter):
        log.info("train %s/%s: adapter already in the store, skipped", build, policy)
        return {
            "build": build,
            "policy": policy,
            "adapter": store.uri(adapter),
            "trained": False,
        }
    spec = builds.load_spec(store, build)
    weight = builds.policy_weight(store, build, policy)
    started = time.monotonic()
    log.info("train %s/%s: started, weight=%s", build, policy, _fmt(weight))
    with tempfile.TemporaryDirectory(prefix=f"palm-train-{policy}-") as tmp:
        history = _run_grpo(store, build, spec, policy, weight, Path(tmp), progress)
        builds.write_json_file(Path(tmp) / "adapter" / "train_log.json", history)
        published = store.put_dir(Path(tmp) / "adapter", adapter)
    seconds = time.monotonic() - started
    log.info(
        "train %s/%s: finished in %.1fs, %d steps%s",
        build,
        policy,
        seconds,
        len(history["steps"]),
        "" if published else " (a twin run published first; kept its copy)",
    )
    return {
        "build": build,
        "policy": policy,
        "adapter": store.uri(adapter),
        "trained": True,
        "seconds": round(seconds, 3),
    }


def _run_grpo(store, build, spec, policy, weight, workdir, progress):
    # Imported here: a worker that only evaluates or prunes need not load trl.
    import torch
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from palm import models, rewards

    t = spec.training
    seed = builds.policy_seed(spec, policy)
    model, tokenizer = models.load(builds.base_model_dir(store, build))
    dataset = _train_dataset(spec, seed)
    reward_funcs = [
        _trl_reward(rewards.resolve(o.reward), o.name) for o in spec.objectives
    ]
    use_cuda = model.device.type == "cuda"
    config = GRPOConfig(
        output_dir=str(workdir / "trainer"),
        max_steps=t.steps,
        per_device_train_batch_size=t.batch_size,
        num_generations=t.num_generations,
        max_completion_length=t.max_new_tokens,
        temperature=t.temperature,
        learning_rate=t.learning_rate,
        beta=t.beta,
        reward_weights=list(weight),
        seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=not use_cuda,
        bf16=use_cuda,
    )
    lora = LoraConfig(
        r=t.lora_rank,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=t.target_modules,
        task_type="CAUSAL_LM",
    )
    recorder = _StepRecorder(spec.objective_names, t.steps, progress)
    torch.manual_seed(seed)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[recorder],
    )
    # Steps are logged by the recorder, one line each; the printer would repeat them.
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.model.save_pretrained(str(workdir / "adapter"))
    return {
        "policy": policy,
        "weight": list(weight),
        "seed": seed,
        "objectives": list(spec.objective_names),
        "steps": recorder.rows,
    }


def _trl_reward(fn, name: str):
    """Adapt a PALM reward (prompts, responses) -> array to trl's signature."""
    from palm import rewards

    def reward(prompts, completions, **_):
        return [float(v) for v in rewards.score(fn, prompts, completions)]

    reward.__name__ = name  # trl logs each reward under its function's name
    return reward


def _fmt(weight) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in weight) + "]"


def _train_dataset(spec, seed: int):
    """The task's training prompts as the dataset GRPO samples from."""
    from datasets import Dataset

    from palm.tasks import get_task

    prompts = get_task(spec.task).prompts("train", spec.training.prompts, seed=seed)
    return Dataset.from_dict({"prompt": [p.text for p in prompts]})


class _StepRecorder(TrainerCallback):
    """Keeps one row per step (loss, mean reward per objective) and reports it."""

    def __init__(self, objectives, total: int, progress: Progress | None):
        self.objectives = list(objectives)
        self.total = total
        self.progress = progress
        self.rows: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        row = {"step": int(state.global_step), "train/loss": float(logs["loss"])}
        for name in self.objectives:
            key = f"rewards/{name}/mean"
            if key in logs:
                row[f"train/reward/{name}"] = float(logs[key])
        if "reward" in logs:
            row["train/reward"] = float(logs["reward"])
        self.rows.append(row)
        log.debug("train step %d/%d: %s", row["step"], self.total, row)
        if self.progress is not None:
            self.progress(row["step"], self.total, row)
