"""Every transfer config opens with the command that runs it and parses with its recipe's dataclass."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from nlp_transfer.config import parse_config

CONFIGS = sorted(Path("recipes/configs/transfer").glob("*.yaml"))
CLASSES = {
    "transfer_report": "ReportConfig", "fewshot": "FewShotConfig", "domain_adapt": "DomainAdaptStudy",
    "multitask": "MultiTaskStudy", "distill": "DistillStudy", "dapt": "DaptStudy",
}  # fmt: skip


def _config_class(recipe: Path) -> type:
    name = recipe.stem
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", recipe)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, CLASSES[name])


def test_there_are_transfer_configs() -> None:
    assert {c.stem.split("_")[0] for c in CONFIGS} >= {"report", "domain", "multitask", "distill", "fewshot", "dapt"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_transfer_config_parses_and_opens_with_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# python recipes/") and f"--config {path}" in first, first
    recipe = Path(next(w for w in first.split() if w.startswith("recipes/") and w.endswith(".py")))
    assert recipe.is_file()
    cfg = parse_config(_config_class(recipe), ["--config", str(path)])
    assert cfg.output_dir.startswith("runs/")


def test_unknown_key_in_a_nested_train_mapping_is_caught() -> None:
    from nlp_transfer.errors import ConfigError
    from nlp_transfer.transfer.report import ReportConfig

    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        ReportConfig(train={"epoch": 2}).validate()
