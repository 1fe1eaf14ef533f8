"""Every shipped recipe config, run as shipped at toy scale: the matrix behind the shipped-config test
and the refactor's before/after metrics snapshot (benchmarks/config_snapshot.py).

Why: a config is a promise ("run this command"), and its settings (precision auto, LoRA, bf16 storage
of the frozen base, generation at validation) interact in ways no single unit test sees; the README's
summarisation command once crashed while every test passed because the decoder tests forced fp32.
So each config keeps its own precision, method, task, recipe and model family; only these change:

- the model: a tiny random model of the same family (`FAMILY`), built deterministically here;
- data size (max_train_samples, max_eval_samples, or the recipe's own counts: budgets, texts, probe
  and latency examples, prompt examples) and step count (max_steps, min_steps);
- output_dir (and the transfer report's report_dir), and report_to none.

A config whose recipe or model has no rule here fails with a message saying what to add.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import re
import runpy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*ROOT.glob("recipes/configs/*.yaml"), *ROOT.glob("recipes/configs/transfer/*.yaml")])
FAMILY = {"minilm-l6": "bert", "smollm2-135m": "llama"}  # built-in name -> tiny model of its family
TRAIN_SAMPLES, EVAL_SAMPLES, STEPS = 16, 8, 2

# A ChatML-like template, so the tiny decoder takes the chat-prompt path that SmolLM2-Instruct takes.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<s>' + m['role'] + '\\n' + m['content'] + '</s>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant\\n' }}{% endif %}"
)


def config_id(path: Path) -> str:
    """`transfer/distill_rt_minilm.yaml` style: unique across both config directories."""
    return str(path.relative_to(ROOT / "recipes" / "configs"))


def build_tiny_models(root: Path) -> dict[str, Path]:
    """family -> directory; the same bytes on every call (seeded), so snapshots compare across trees.

    bert: MiniLM's tokenizer and depth (6 layers, so distillation's 3-layer students pick the same
    layers), width 32. llama: tied embeddings like SmolLM2 (the lm_head stays fp32 when the frozen
    base is stored in bf16), 1024 positions so the shipped 480+144-token budgets fit, a chat template.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, BertConfig, LlamaConfig

    from nlp_transfer.catalog import resolve_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import _word_tokenizer  # the tiny decoders' BPE tokenizer, shared with the fixtures

    bert, llama = root / "bert", root / "llama"
    if not (bert / "config.json").exists():
        tok = AutoTokenizer.from_pretrained(resolve_model("minilm-l6").path)
        torch.manual_seed(0)
        config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=512)  # fmt: skip
        AutoModel.from_config(config).save_pretrained(bert)
        tok.save_pretrained(bert)
    if not (llama / "config.json").exists():
        _word_tokenizer(llama, eos=True)
        tok = AutoTokenizer.from_pretrained(llama)
        tok.chat_template = CHAT_TEMPLATE
        tok.save_pretrained(llama)
        config = LlamaConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
            pad_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
        )  # fmt: skip
        config.architectures = ["LlamaForCausalLM"]
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        # Random weights greedily repeat a newline, which decodes to an empty summary: comparisons
        # of summaries would then see nothing. Zeroing the (tied) embedding rows of whitespace-only
        # and special tokens gives them logit 0 among random ones, so the text is visible words.
        blank = [i for i in range(len(tok)) if not tok.decode([i], skip_special_tokens=True).strip()]
        with torch.no_grad():
            model.get_input_embeddings().weight[blank] = 0.0
        model.save_pretrained(llama)
    return {"bert": bert, "llama": llama}


def recipe_of(path: Path) -> Path:
    """The recipe named in the config's first line (`# python recipes/X.py --config ...`)."""
    first = path.read_text().splitlines()[0]
    match = re.search(r"recipes/\w+\.py", first)
    if not match:
        raise ValueError(f"{path}: the first line must name its recipe (# python recipes/X.py --config ...)")
    return ROOT / match.group(0)


def _config_class(recipe: Path, keys: set[str]) -> type:
    """The dataclass the recipe parses: the one in its namespace whose fields cover the YAML's keys."""
    spec = importlib.util.spec_from_file_location(f"shipped_recipe_{recipe.stem}", recipe)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if dataclasses.is_dataclass(value) and isinstance(value, type):
            if keys <= {f.name for f in dataclasses.fields(value)}:
                return value
    raise ValueError(f"{recipe.name}: no config dataclass with the keys {sorted(keys)}")


def _tiny(value: str, models: dict[str, Path], where: str) -> str:
    if value not in FAMILY:
        raise ValueError(
            f"{where}: model {value!r} has no tiny stand-in; add its family to FAMILY in tests/shipped_configs.py"
        )
    return str(models[FAMILY[value]])


def _swap_models(node: Any, models: dict[str, Path], where: str) -> Any:
    """Every `model`-like key (model, embed_model, prompt_model) at any depth -> the tiny stand-in."""
    if isinstance(node, dict):
        return {
            k: _tiny(v, models, f"{where}.{k}") if k.endswith("model") and isinstance(v, str) else _swap_models(v, models, f"{where}.{k}")
            for k, v in node.items()
        }  # fmt: skip
    return node


def _small(train: dict[str, Any]) -> None:
    """Toy data size and step count for a mapping of TrainConfig keys (caps only: never raises a value)."""
    train["max_train_samples"] = min(train.get("max_train_samples") or TRAIN_SAMPLES, TRAIN_SAMPLES)
    train["max_eval_samples"] = min(train.get("max_eval_samples") or EVAL_SAMPLES, EVAL_SAMPLES)
    train["max_steps"] = STEPS
    train["report_to"] = "none"


def _train_recipe(cfg: dict[str, Any], out: Path) -> None:
    """classify.py, summarize.py: TrainConfig keys at the top level."""
    _small(cfg)
    cfg["output_dir"] = str(out)


def _dapt(cfg: dict[str, Any], out: Path) -> None:
    cfg["pretrain"].update(max_steps=STEPS, report_to="none")
    cfg["text"]["max_texts"] = TRAIN_SAMPLES
    _small(cfg["finetune"])
    cfg["finetune_min_steps"] = STEPS
    cfg["output_dir"] = str(out)


def _distill(cfg: dict[str, Any], out: Path) -> None:
    _small(cfg["train"])
    cfg["latency_examples"] = EVAL_SAMPLES
    cfg["output_dir"] = str(out)


def _domain_adapt(cfg: dict[str, Any], out: Path) -> None:
    _small(cfg["train"])
    cfg["probe_examples"] = 20  # per domain; the probe's 5-fold cross-validation needs a few of each
    cfg["output_dir"] = str(out)


def _fewshot(cfg: dict[str, Any], out: Path) -> None:
    _small(cfg["train"])
    cfg["ks"] = sorted(cfg["ks"])[:1]  # examples per class: the smallest shipped budget only
    cfg["min_steps"] = STEPS
    cfg["validation_size"] = EVAL_SAMPLES
    cfg["prompt_max_examples"] = EVAL_SAMPLES
    cfg["output_dir"] = str(out)


def _multitask(cfg: dict[str, Any], out: Path) -> None:
    _small(cfg["train"])
    for spec in cfg["tasks"].values():
        spec["max_train_samples"] = TRAIN_SAMPLES
    cfg["output_dir"] = str(out)


def _report(cfg: dict[str, Any], out: Path) -> None:
    _small(cfg["train"])
    numeric = sorted(int(b) for b in cfg["budgets"] if b != "all")
    cfg["budgets"] = [str(numeric[0])]  # labels per run: the smallest shipped budget only
    cfg["min_steps"] = STEPS
    cfg["validation_size"] = EVAL_SAMPLES
    cfg["track_examples"] = EVAL_SAMPLES
    cfg["output_dir"], cfg["report_dir"] = str(out), str(out / "report")


RULES: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "classify": _train_recipe, "summarize": _train_recipe, "dapt": _dapt, "distill": _distill,
    "domain_adapt": _domain_adapt, "fewshot": _fewshot, "multitask": _multitask, "transfer_report": _report,
}  # fmt: skip


def toy_config(path: Path, models: dict[str, Path], out: Path) -> dict[str, Any]:
    """The shipped config with only model, data size, step count, output paths and report_to changed."""
    recipe = recipe_of(path)
    if recipe.stem not in RULES:
        raise ValueError(
            f"{path.name}: no toy-scale rule for recipes/{recipe.name}; add one to RULES in tests/shipped_configs.py"
        )
    cfg = yaml.safe_load(path.read_text())
    # Model fields the YAML leaves at the recipe's default (e.g. fewshot's embed_model) are models too.
    for field in dataclasses.fields(_config_class(recipe, set(cfg))):
        if field.name.endswith("model") and field.name not in cfg and field.default in FAMILY:
            cfg[field.name] = field.default
    cfg = _swap_models(cfg, models, path.name)
    RULES[recipe.stem](cfg, out)
    return cfg


@contextlib.contextmanager
def _as_a_process(argv: list[str]) -> Iterator[None]:
    """argv and cwd as the command line would set them; one torch thread, because on matrices this
    small two threads spend more time waiting on each other than computing (measured: 5.5x the CPU
    time of one thread for the summarisation config on a loaded 2-core machine)."""
    import torch

    old_argv, old_cwd, old_threads = sys.argv, os.getcwd(), torch.get_num_threads()
    sys.argv = argv
    os.chdir(ROOT)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        torch.set_num_threads(old_threads)


def run_shipped(path: Path, models: dict[str, Path], out: Path) -> dict[str, Any]:
    """Run the config's recipe in this process, as `python recipes/X.py --config toy.yaml` would;
    returns every metrics.json and results.jsonl it wrote (by path relative to `out`).

    Raises AssertionError with the recipe's last output lines when it exits non-zero; exceptions
    the recipe does not turn into an exit code propagate with their traceback.
    """
    out.mkdir(parents=True, exist_ok=True)
    toy = out.parent / f"{out.name}.yaml"
    toy.write_text(yaml.safe_dump(toy_config(path, models, out), sort_keys=False))
    recipe = recipe_of(path)
    err = io.StringIO()
    with _as_a_process([str(recipe), "--config", str(toy)]), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(recipe), run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code or 0
    if code != 0:
        raise AssertionError(
            f"{config_id(path)}: recipes/{recipe.name} exited {code}: {err.getvalue()[-2000:]}"
        )
    return collect(out)


def collect(out: Path) -> dict[str, Any]:
    """{relative path: metrics.json content or results.jsonl rows} under a finished run or study."""
    found: dict[str, Any] = {}
    for path in sorted(out.rglob("metrics.json")):
        found[str(path.relative_to(out))] = json.loads(path.read_text())
    for path in sorted(out.rglob("results.jsonl")):
        found[str(path.relative_to(out))] = [
            json.loads(line) for line in path.read_text().splitlines() if line.strip()
        ]
    return found


# Timing, memory and latency depend on the machine and its load, not on the code's results.
VOLATILE = re.compile(r"(time|_per_s|per_s$|memory|latency|_s$|^created$)")


def deterministic(node: Any, out: Path) -> Any:
    """Metrics minus VOLATILE keys, with paths under `out` made relative (they name a temp dir)."""
    if isinstance(node, dict):
        return {k: deterministic(v, out) for k, v in node.items() if not VOLATILE.search(k)}
    if isinstance(node, list):
        return [deterministic(v, out) for v in node]
    if isinstance(node, str) and str(out) in node:
        return node.replace(str(out), "<out>")
    return node
