"""A tiny real portfolio for the router's tests and bench: no model hub needed.

`build_tiny(root)` lays out a store under `root` with a word-level tokenizer trained
on generated sentences, a two-layer Llama of 64 hidden units, `adapters` seeded LoRA
adapters that differ from each other, and portfolio.json (version 1) over the first
`members` of them. Everything is seeded, so two builds are identical.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from palm.store import COMPLETE
from services.router.engine import peft_deprecations_quiet

BUILD = "tiny-router"
OBJECTIVES = ("brevity", "informativeness", "warmth")
WORDS = [
    "the",
    "a",
    "your",
    "order",
    "refund",
    "parcel",
    "late",
    "today",
    "thanks",
    "sorry",
    "help",
    "we",
    "will",
    "please",
    "card",
    "paid",
    "box",
    "item",
    "ship",
    "track",
    "number",
    "email",
    "account",
    "reset",
    "password",
    "soon",
    "kind",
    "regards",
    "happy",
    "glad",
    "issue",
    "fixed",
    "check",
    "again",
    "wait",
    "day",
    "week",
    "store",
    "return",
    "label",
]


def build_tiny(root: str | Path, *, adapters: int = 5, members: int = 4) -> Path:
    """Write the tiny store under `root`; returns the path of portfolio.json."""
    root = Path(root)
    base = root / "models" / "tiny"
    _base_model(base)
    build = root / "builds" / BUILD
    for i in range(adapters):
        _adapter(base, build / "policies" / member_id(i) / "adapter", seed=i + 1)
    rng = random.Random(0)
    rewards = [[round(rng.random(), 4) for _ in OBJECTIVES] for _ in range(adapters)]
    doc = portfolio_doc(root, 1, list(range(members)), rewards)
    path = build / "portfolio.json"
    path.write_text(json.dumps(doc, indent=2))
    (root / "rewards.json").write_text(json.dumps(rewards))
    return path


def member_id(i: int) -> str:
    return f"p{i:04d}"


def portfolio_doc(
    root: Path, version: int, indices: list[int], rewards: list[list[float]]
) -> dict:
    """A portfolio.json document over the adapters numbered `indices`."""
    build = Path(root) / "builds" / BUILD
    d = len(OBJECTIVES)
    return {
        "format": "palm.portfolio/1",
        "build": BUILD,
        "version": version,
        "created": "2026-12-03T13:00:00Z",
        "objectives": list(OBJECTIVES),
        "base_model": str(Path(root) / "models" / "tiny"),
        "solver": "greedy",
        "epsilon": 0.05,
        "delta": 0.0,
        "trained": len(rewards),
        "members": [
            {
                "id": member_id(i),
                "weight": [1.0 / d] * d,
                "rewards": rewards[i],
                "stderr": [0.01] * d,
                "adapter": str(build / "policies" / member_id(i) / "adapter"),
            }
            for i in indices
        ],
        "certificate": {
            "multiplicative": {"gap": 0.012, "weight": [1.0, 0.0, 0.0]},
            "additive": {"gap": 0.004, "weight": [0.0, 1.0, 0.0]},
        },
    }


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)]


def _base_model(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    # Word level over a few hundred sentences: a vocabulary of ~60 words.
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.decoder = decoders.WordPiece()  # joins words with spaces
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    raw.train_from_iterator(
        sentences(300), trainers.WordLevelTrainer(special_tokens=specials)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,  # tiny: 2 layers x 64 units, fast on two CPU cores
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    tokenizer.save_pretrained(folder)
    LlamaForCausalLM(config).save_pretrained(folder)
    (folder / COMPLETE).touch()


def _adapter(base: Path, folder: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    # Random (not zero) B matrices, so every member answers differently.
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
    )
    with peft_deprecations_quiet():
        get_peft_model(model, config).save_pretrained(folder)
    (folder / COMPLETE).touch()
