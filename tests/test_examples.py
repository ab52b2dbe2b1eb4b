"""examples/gpu.toml stays a valid spec on machines without its model folder.

The spec loader refuses a base model folder that does not exist, and the GPU
example names a placeholder folder. So it is checked twice: loaded as it is, the
only problem is that folder; with the folder swapped for a real one, it parses.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from palm import builds
from palm.errors import SpecError
from palm.spec import BuildSpec, load_spec, parse_spec

GPU = Path(__file__).resolve().parents[1] / "examples" / "gpu.toml"


def gpu_base() -> str:
    with GPU.open("rb") as f:
        return tomllib.load(f)["model"]["base"]


def test_gpu_example_names_its_missing_model_folder():
    base = gpu_base()
    if Path(base).is_dir():
        pytest.skip(f"{base} exists on this machine; the example loads as it is")
    with pytest.raises(SpecError, match=re.escape(repr(base))) as caught:
        load_spec(GPU)
    assert len(caught.value.problems) == 1, caught.value.problems


def test_gpu_example_parses_with_a_model_folder(tmp_path):
    text = GPU.read_text().replace(f'"{gpu_base()}"', json.dumps(str(tmp_path)))
    spec = parse_spec(text, source=str(GPU))
    assert spec.model.base == str(tmp_path.resolve())
    assert spec.objective_names == ("brevity", "informativeness", "warmth")
    # The paper's scale: a fine grid, hundreds of steps, a LoRA on attention and MLP.
    assert len(builds.plan_policies(spec)) == 169
    assert spec.training.steps >= 100
    assert 16 <= spec.training.lora_rank <= 64
    assert {"q_proj", "v_proj", "down_proj"} <= set(spec.training.target_modules)
    assert spec.cover.solver == "exact"
    assert BuildSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
