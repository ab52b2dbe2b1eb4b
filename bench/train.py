"""GRPO training through PALM beside a bare trl GRPOTrainer, in one process.

    .venv/bin/python bench/train.py [--specs tiny support] [--policies 2] [--pairs 2]
        [--threads N]

For each spec, a few policies are trained in a temp store with `train_policy` (ours)
and with trl's `GRPOTrainer` constructed directly (bare): same GRPOConfig, same LoRA,
same reward functions, same dataset, same seed. The bare trainer is given exactly
what ours gave trl, recorded as ours built its trainer, so the two cannot drift.

Per step: the median wall time of one optimisation step (generation, rewards,
backward, update), timed by a callback that both trainers are given; train(): the
wall time of `trainer.train()` over all steps. Model load is outside both. Per
policy: wall time of the whole job, model load and publish included (ours:
`train_policy`; bare: load, build, train, `save_pretrained`). Same seed and inputs
give the same losses; the last column checks it.

Runs alternate per policy, ours-bare then bare-ours, so drift in the machine's load
falls on both sides; the ratio is the median of the per-pair ratios (target: ours is
under 1.05 of bare per step). The bundled model is taken from the repository's
.cache (PALM_CACHE), so nothing is pre-trained when it is there. Progress goes to
stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PALM_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import trl  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from palm import builds, models  # noqa: E402
from palm.spec import load_spec  # noqa: E402
from palm.store import Store  # noqa: E402
from palm.training import train_policy  # noqa: E402

# TODO: drop once trl stops passing transformers' renamed gradient_checkpointing
# arguments (the same notice palm.cli silences).
warnings.filterwarnings("ignore", message=".* is deprecated and will be removed in v6")


class StepTimer(TrainerCallback):
    """Wall time of each optimisation step (generation, rewards, backward, update)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class Probe:
    """What the last GRPOTrainer was given, and the time of each of its steps.

    Installed on the class, so ours and bare pay for it alike.
    """

    inputs: dict = field(default_factory=dict)
    timer: StepTimer = field(default_factory=StepTimer)
    train_s: float = 0.0

    def install(self) -> None:
        cls = trl.GRPOTrainer
        init, train = cls.__init__, cls.train

        @functools.wraps(init)
        def recording_init(trainer, *args, **kwargs):
            # Copied before trl sees them: peft fills in a LoraConfig in place.
            self.inputs = {
                "reward_funcs": kwargs["reward_funcs"],
                "args": copy.deepcopy(kwargs["args"]),
                "train_dataset": kwargs["train_dataset"],
                "peft_config": copy.deepcopy(kwargs["peft_config"]),
            }
            self.timer = StepTimer()
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), self.timer]
            init(trainer, *args, **kwargs)

        @functools.wraps(train)
        def timed_train(trainer, *args, **kwargs):
            start = time.perf_counter()
            out = train(trainer, *args, **kwargs)
            self.train_s = time.perf_counter() - start
            return out

        cls.__init__, cls.train = recording_init, timed_train

    def step_s(self) -> float:
        # The median step: a burst of other load on a shared machine moves it little.
        return statistics.median(self.timer.seconds)


@dataclass
class Run:
    step_s: float  # median step wall time
    train_s: float  # train() wall time, all steps
    policy_s: float  # the whole job, load and publish included
    losses: list[float]


def run_ours(probe: Probe, store: Store, spec, policy: str) -> Run:
    build = builds.prepare(spec, store)
    start = time.perf_counter()
    train_policy(store, build, policy)
    policy_s = time.perf_counter() - start
    log = store.read_json(f"{builds.adapter_path(build, policy)}/train_log.json")
    losses = [row["train/loss"] for row in log["steps"]]
    return Run(probe.step_s(), probe.train_s, policy_s, losses)


def run_bare(probe: Probe, inputs: dict, model_dir: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="palm-bench-bare-") as tmp:
        args = copy.deepcopy(inputs["args"])
        args.output_dir = str(Path(tmp) / "trainer")
        start = time.perf_counter()
        model, tokenizer = models.load(model_dir)
        torch.manual_seed(args.seed)
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=inputs["reward_funcs"],
            args=args,
            train_dataset=inputs["train_dataset"],
            processing_class=tokenizer,
            peft_config=copy.deepcopy(inputs["peft_config"]),
        )
        # trl's own PrinterCallback prints every step's logs: kept, but not shown.
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
        trainer.model.save_pretrained(str(Path(tmp) / "adapter"))
        policy_s = time.perf_counter() - start
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return Run(probe.step_s(), probe.train_s, policy_s, losses)


def bench_spec(probe: Probe, name: str, n_policies: int, pairs: int) -> list[str]:
    spec = load_spec(ROOT / "examples" / f"{name}.toml")
    plan = [p["id"] for p in builds.plan_policies(spec)]
    # The first and last weight vectors, then the middle: different objectives.
    chosen = [plan[0], plan[-1], plan[len(plan) // 2]][:n_policies]
    ours: list[Run] = []
    bare: list[Run] = []
    ratios: dict[str, list[float]] = {"step": [], "train": [], "policy": []}
    loss_gap = 0.0
    with tempfile.TemporaryDirectory(prefix="palm-bench-train-") as tmp:
        store = Store(str(Path(tmp) / "store"))
        for policy in chosen:
            inputs, model_dir = None, None
            for pair in range(pairs):
                # ours first in even pairs (its first run records what bare is given).
                order = ("ours", "bare") if pair % 2 == 0 else ("bare", "ours")
                got = {}
                for side in order:
                    if side == "ours":
                        got["ours"] = run_ours(probe, store, spec, policy)
                        inputs = inputs or probe.inputs
                        model_dir = model_dir or _model_dir(store)
                    else:
                        got["bare"] = run_bare(probe, inputs, model_dir)
                    progress(
                        f"{name} {policy} pair {pair} {side}: "
                        f"{got[side].step_s:.3f} s/step, {got[side].policy_s:.1f} s"
                    )
                ours.append(got["ours"])
                bare.append(got["bare"])
                for key in ratios:
                    a, b = (getattr(got[side], f"{key}_s") for side in ("ours", "bare"))
                    ratios[key].append(a / b)
                loss_gap = max(loss_gap, _loss_gap(got["ours"], got["bare"]))
    t = spec.training
    return [
        name,
        str(len(chosen)),
        str(len(ours)),
        str(t.steps),
        f"{t.batch_size}/{t.num_generations}/{t.max_new_tokens}",
        f"{statistics.median(r.step_s for r in ours):.3f}",
        f"{statistics.median(r.step_s for r in bare):.3f}",
        f"{statistics.median(ratios['step']):.3f}",
        f"{statistics.median(ratios['train']):.3f}",
        f"{statistics.median(r.policy_s for r in ours):.1f}",
        f"{statistics.median(r.policy_s for r in bare):.1f}",
        f"{statistics.median(ratios['policy']):.3f}",
        f"{loss_gap:.1e}",
    ]


def _loss_gap(a: Run, b: Run) -> float:
    """Largest step-wise loss difference: 0 when both trained the same thing."""
    if len(a.losses) != len(b.losses):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a.losses, b.losses, strict=True)), default=0)


def _model_dir(store: Store) -> str:
    # Every build of a spec shares one base model in the store; any build will do.
    build = store.list("builds")[0]
    return builds.base_model_dir(store, build)


def warm_up(probe: Probe, name: str) -> None:
    """One untimed policy, so imports and first-call costs fall on no measured run."""
    spec = load_spec(ROOT / "examples" / f"{name}.toml")
    with tempfile.TemporaryDirectory(prefix="palm-bench-warm-") as tmp:
        store = Store(str(Path(tmp) / "store"))
        run_ours(probe, store, spec, builds.plan_policies(spec)[0]["id"])


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


HEADER = [
    "spec",
    "policies",
    "pairs",
    "steps",
    "batch/gen/tokens",
    "ours s/step",
    "bare s/step",
    "step ratio",
    "train() ratio",
    "ours s/policy",
    "bare s/policy",
    "policy ratio",
    "max loss diff",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=["tiny", "support"])
    parser.add_argument("--policies", type=int, default=2, help="per spec (1-3)")
    parser.add_argument("--pairs", type=int, default=2, help="ours/bare per policy")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads; 0: torch's default"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    probe = Probe()
    probe.install()
    progress("warming up (one untimed policy)")
    warm_up(probe, args.specs[0])
    rows = [bench_spec(probe, n, args.policies, args.pairs) for n in args.specs]
    print(
        f"device {models.device()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), trl {trl.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    print()
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
