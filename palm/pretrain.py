"""Pre-train the bundled model: a small tokenizer and causal LM on a task's corpus.

The result is an ordinary Hugging Face folder (``config.json``, weights, a
``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as EOS and ``<|pad|>`` as pad), so
everything downstream treats it like any other local base model.

Builds are deterministic (seeded, fixed data order) and cached by their settings:
`pretrain` writes into ``<out_dir>/<task>-<hash>/``, where the hash covers the task,
every `PretrainSettings` field, a sample of the corpus and `FORMAT`. Asking again
with the same settings returns that folder at once; other settings get another
folder, so several variants live side by side. A build is written aside and renamed
into place, so a crash never leaves a half-written model that looks finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from palm.errors import SpecError
from palm.tasks import get_task

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped whenever the training code changes what a given setting produces."""
SETTINGS_FILE = "settings.json"
_FINGERPRINT_TEXTS = 200  # corpus texts hashed into the cache key
EOS = "<|endoftext|>"
# A word with its leading space, minus trailing punctuation (which is split off).
_WORD = r" ?[^\s]+?(?=[.,!?;:]*(?:\s|$))"
PAD = "<|pad|>"


@dataclass(frozen=True)
class PretrainSettings:
    """How the bundled model is built. The defaults train in about two minutes on
    one or two CPU cores and give fluent replies of every style that copy facts
    from the record about half the time they state one."""

    corpus_size: int = 6000
    """Prompt + reply texts drawn from the task's train split."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary size, special tokens included."""
    hidden_size: int = 128
    """Width of the residual stream."""
    layers: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads; must divide hidden_size."""
    intermediate_size: int = 384
    """Width of each block's gated MLP."""
    max_length: int = 192
    """Tokens per training text (longer texts are cut) and the position limit."""
    steps: int = 500
    """Optimizer steps."""
    batch_size: int = 24
    """Texts per step."""
    learning_rate: float = 5e-3
    """Peak AdamW learning rate, reached after warmup, then cosine decay to 10%."""
    warmup_steps: int = 20
    """Linear warmup steps; fewer than `steps`."""
    seed: int = 0
    """Seeds the corpus, the initial weights and the data order."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(problems, source="pretrain settings")

    def problems(self) -> list[str]:
        """Every rule these settings break, each naming the field and the fix."""
        out = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            low = 0 if field.name in ("seed", "warmup_steps") else 1
            if field.type == "int" and value < low:
                out.append(f"{field.name}: {value} is below {low}; use {low} or more")
        if self.learning_rate <= 0:
            out.append(f"learning_rate: {self.learning_rate} must be above 0")
        if self.heads > 0 and self.hidden_size % self.heads:
            out.append(
                f"heads: {self.heads} does not divide hidden_size {self.hidden_size}; "
                "pick a divisor"
            )
        if self.warmup_steps >= self.steps > 0:
            out.append(
                f"warmup_steps: {self.warmup_steps} is not below steps {self.steps}; "
                "lower it"
            )
        if 0 < self.vocab_size < 300:
            out.append(
                f"vocab_size: {self.vocab_size} is below 300; byte-level BPE needs "
                "256 byte tokens plus merges"
            )
        return out

    def digest(self, task_name: str) -> str:
        """A stable hash of the task's corpus, these settings and the code's FORMAT.

        The corpus enters through a sample of its texts, so a change to the task's
        templates makes a new model instead of returning a stale one.
        """
        sample = get_task(task_name).corpus(_FINGERPRINT_TEXTS, seed=self.seed)
        blob = json.dumps(
            {
                "format": FORMAT,
                "task": task_name,
                "corpus": hashlib.sha256("\n".join(sample).encode()).hexdigest(),
                **dataclasses.asdict(self),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def model_dir(task_name: str, out_dir: str | Path, settings: PretrainSettings) -> Path:
    """Where `pretrain` puts (or finds) the model for these settings."""
    return Path(out_dir) / f"{task_name}-{settings.digest(task_name)[:12]}"


def is_built(task_name: str, out_dir: str | Path, settings: PretrainSettings) -> bool:
    """Whether the model for these settings is already in `out_dir`."""
    target = model_dir(task_name, out_dir, settings)
    try:
        recorded = json.loads((target / SETTINGS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return recorded.get("hash") == settings.digest(task_name)


def pretrain(
    task_name: str,
    out_dir: str | Path,
    settings: PretrainSettings | None = None,
    *,
    threads: int | None = None,
) -> Path:
    """Build (or find in the cache) the bundled model; returns its folder.

    `threads` caps torch's CPU threads while training (restored afterwards); it is
    not part of the cache key.
    """
    settings = settings or PretrainSettings()
    task = get_task(task_name)
    target = model_dir(task_name, out_dir, settings)
    if is_built(task_name, out_dir, settings):
        log.info("pretrain %s: cached at %s", task_name, target)
        return target
    # Written aside under a name unique to this process, then renamed into place.
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        record = _build(task, settings, scratch)
    finally:
        torch.set_num_threads(previous_threads)
    record["hash"] = settings.digest(task_name)
    (scratch / SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return _publish(scratch, target)


def _publish(scratch: Path, target: Path) -> Path:
    if target.is_dir() and not (target / SETTINGS_FILE).is_file():
        # Finished builds are renamed in whole, so this is a leftover: replace it.
        shutil.rmtree(target, ignore_errors=True)
    try:
        scratch.rename(target)
    except OSError:
        # Another process finished the same build first; its copy is as good.
        shutil.rmtree(scratch, ignore_errors=True)
        if not (target / SETTINGS_FILE).is_file():
            raise
    return target


def _build(task, settings: PretrainSettings, out: Path) -> dict:
    """Train tokenizer and model into `out`; returns what settings.json records."""
    started = time.monotonic()
    parts = task.corpus_parts(settings.corpus_size, seed=settings.seed)
    texts = [given + learned for given, learned in parts]
    tokenizer = train_tokenizer(texts, settings.vocab_size)
    torch.manual_seed(settings.seed)
    model = _new_model(settings, tokenizer)
    log.info(
        "pretrain %s: %d texts, vocab %d, %.2fM parameters",
        task.name,
        len(texts),
        len(tokenizer),
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    examples = [_encode(tokenizer, g, x, settings.max_length) for g, x in parts]
    loss = _train(model, examples, settings, tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "task": task.name,
        "format": FORMAT,
        "settings": dataclasses.asdict(settings),
        "final_loss": round(loss, 4),
        "seconds": round(time.monotonic() - started, 1),
    }


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer over `texts`, wrapped for transformers."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    # Words keep their inner punctuation ("#4163", "$45.20", "TRK-5521") and lose
    # the trailing kind, so each fact value can become one token that the model
    # learns to copy whole.
    words = pre_tokenizers.Split(Regex(_WORD), behavior="isolated")
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [words, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def _new_model(settings: PretrainSettings, tokenizer):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=settings.max_length,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    # A clean generation config, so sampling defaults come from the caller only.
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def _encode(tokenizer, given: str, learned: str, max_length: int):
    """Token ids of given + learned + EOS, and how many of them are `given`.

    Only the learned part is trained on: the given part holds random draws (a
    ticket's facts) that no model can predict, and fitting them would only add
    noise to the copying it must learn.
    """
    encoded = tokenizer(given + learned, return_offsets_mapping=True)
    n_given = sum(1 for start, _ in encoded["offset_mapping"] if start < len(given))
    ids = encoded["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
    return ids, n_given


def _train(model, examples, settings: PretrainSettings, pad: int) -> float:
    """AdamW with warmup and cosine decay over a seeded shuffle; returns the
    last interval's mean loss."""
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.95)
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_scale(step, settings)
    )
    order = _batches(len(examples), settings)
    interval = max(1, settings.steps // 10)
    started, running = time.monotonic(), []
    for step in range(1, settings.steps + 1):
        inputs, mask, labels = _collate([examples[i] for i in next(order)], pad)
        loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        if step % interval == 0 or step == settings.steps:
            mean = sum(running) / len(running)
            log.info(
                "pretrain step %d/%d loss %.3f %.1fs",
                step,
                settings.steps,
                mean,
                time.monotonic() - started,
            )
            last, running = mean, []
    model.eval()
    return last


def _lr_scale(step: int, settings: PretrainSettings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / (settings.steps - settings.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _batches(n: int, settings: PretrainSettings):
    """Endless batches of indices: a fresh seeded permutation per epoch."""
    generator = torch.Generator().manual_seed(settings.seed)
    while True:
        for batch in torch.randperm(n, generator=generator).split(settings.batch_size):
            if len(batch) == settings.batch_size or n < settings.batch_size:
                yield batch.tolist()


def _collate(examples, pad: int) -> tuple[torch.Tensor, ...]:
    """Right-pad a batch; padding and given parts are not learned (label -100)."""
    width = max(len(ids) for ids, _ in examples)
    inputs = torch.full((len(examples), width), pad, dtype=torch.long)
    mask = torch.zeros_like(inputs)
    labels = torch.full_like(inputs, -100)
    for row, (ids, n_given) in enumerate(examples):
        inputs[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, n_given : len(ids)] = inputs[row, n_given : len(ids)]
    return inputs, mask, labels
