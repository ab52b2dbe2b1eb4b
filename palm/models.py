"""Loading local causal LMs and sampling from them, on GPU when there is one.

Every load is local (``local_files_only``): PALM never reaches a model hub. The
tokenizer pads on the left, so a batch of prompts ends where generation begins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from palm.errors import InputError

log = logging.getLogger(__name__)


def device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(where: torch.device) -> torch.dtype:
    """bfloat16 on CUDA, float32 on the CPU (bf16 matmuls are slow there)."""
    return torch.bfloat16 if where.type == "cuda" else torch.float32


def load(
    path: str | Path,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
):
    """A local Hugging Face causal LM and its tokenizer, ready to generate.

    Returns ``(model, tokenizer)``, the model in eval mode on `device` (default:
    `palm.models.device()`), the tokenizer padding on the left with a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(
            f"model path {str(path)!r} holds no config.json; give a folder written "
            "by save_pretrained (or run `palm model pretrain` for the bundled model)"
        )
    where = torch.device(device) if device is not None else _default_device()
    dtype = dtype or default_dtype(where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype
        )
    except OSError as e:
        raise InputError(f"model at {str(path)!r} cannot be loaded: {e}") from e
    _prepare_tokenizer(tokenizer)
    model.to(where).eval()
    log.debug("loaded %s on %s as %s", path, where, dtype)
    return model, tokenizer


def _default_device() -> torch.device:
    # `load` shadows the module-level `device` with its keyword.
    return device()


def _prepare_tokenizer(tokenizer) -> None:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        # Padding is masked out, so reusing EOS as the pad token is harmless.
        tokenizer.pad_token = tokenizer.eos_token


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int | None = None,
    num_return_sequences: int = 1,
    batch_size: int = 32,
) -> list[str]:
    """Continue each prompt; returns only the new text, cut at EOS.

    Temperature 0 is greedy decoding. The result holds `num_return_sequences`
    continuations per prompt, those of one prompt next to each other. With a
    `seed`, sampling is repeatable and leaves the global RNG as it was.
    """
    if temperature < 0 or not 0 < top_p <= 1:
        raise InputError(
            f"temperature {temperature} and top_p {top_p}: need temperature >= 0 "
            "and 0 < top_p <= 1"
        )
    _prepare_tokenizer(tokenizer)
    texts: list[str] = []
    with torch.random.fork_rng(devices=_cuda_devices(model)):
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start : start + batch_size])
            texts += _generate_batch(
                model,
                tokenizer,
                batch,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                num_return_sequences=num_return_sequences,
            )
    return texts


def _cuda_devices(model) -> list[int]:
    where = next(model.parameters()).device
    return [where.index or 0] if where.type == "cuda" else []


def _generate_batch(model, tokenizer, batch: list[str], **kw) -> list[str]:
    from transformers import GenerationConfig

    inputs = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
    sampling = kw["temperature"] > 0
    options = dict(
        max_new_tokens=kw["max_new_tokens"],
        do_sample=sampling,
        num_return_sequences=kw["num_return_sequences"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if sampling:
        options.update(temperature=kw["temperature"], top_p=kw["top_p"], top_k=0)
    # A fresh config, so a model's own sampling defaults never mix with ours.
    config = GenerationConfig(**options)
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=config)
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
