"""Options have one source of truth: dataclass fields = YAML keys = flags. Typos fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp_transfer.config import parse_config, read_yaml
from nlp_transfer.errors import ConfigError
from nlp_transfer.train_config import TrainConfig

CONFIGS = sorted(Path("recipes/configs").glob("*.yaml"))


def test_flags_override_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1.0e-4\nmethod: lora\nmethod_args: {r: 4}\n")
    cfg = parse_config(
        TrainConfig, ["--config", str(path), "--lr", "3e-4", "--method_args.lora_alpha", "8", "--resume"]
    )
    assert cfg.lr == 3e-4 and cfg.resume is True
    assert cfg.method_args == {"r": 4, "lora_alpha": 8}


def test_unknown_yaml_key_names_closest(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("learning_rat: 0.1\nbatch_sise: 8\n")
    with pytest.raises(ConfigError, match="unknown config key 'learning_rat'"):
        parse_config(TrainConfig, ["--config", str(path)])
    path.write_text("batch_sise: 8\n")
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        parse_config(TrainConfig, ["--config", str(path)])


def test_unknown_flag_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        parse_config(TrainConfig, ["--epoch", "3"])
    with pytest.raises(ConfigError, match="cannot read 'many' as int"):
        parse_config(TrainConfig, ["--batch_size", "many"])
    with pytest.raises(ConfigError, match="precision must be one of"):
        parse_config(TrainConfig, ["--precision", "bf61"])
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        parse_config(TrainConfig, ["--batch_size", "0"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_parses_and_opens_with_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and str(path) in first, f"{path} must open with the command that runs it"
    if "accelerate_configs" in first or "recipes/" in first:
        recipe = next(w for w in first.split() if w.startswith("recipes/") and w.endswith(".py"))
        assert Path(recipe).is_file()
    data = read_yaml(path)
    cfg = parse_config(TrainConfig, ["--config", str(path)])
    assert cfg.model and data["output_dir"] == cfg.output_dir


def test_help_lists_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse_config(TrainConfig, ["--help"])
    text = capsys.readouterr().out
    assert "--lr" in text and "--method_args" in text and "peak learning rate" in text


def test_broken_yaml_is_one_line_with_position_and_keeps_the_cause(tmp_path: Path) -> None:
    """PyYAML's message spans five lines with a caret drawing; the error keeps line, column, problem."""
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text("model: minilm-l6\nlabels: [negative, positive\nepochs: 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config file {path} is not valid YAML: line 3, column 7: expected ',' or ']'")
    assert isinstance(info.value.__cause__, yaml.YAMLError)


def test_unreadable_value_keeps_the_cause() -> None:
    with pytest.raises(ConfigError, match="config key 'epochs': cannot read 'two' as float") as info:
        parse_config(TrainConfig, ["--epochs", "two"])
    assert isinstance(info.value.__cause__, ValueError)
