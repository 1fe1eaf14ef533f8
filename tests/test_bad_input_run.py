"""Bad input through `run()` fails with one clear error and leaves nothing behind.

Each case runs twice: with an output_dir that does not exist (it must not be created) and with one
that already holds an unrelated file (the directory must be byte-for-byte unchanged).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.pipeline import run


def snapshot(root: Path) -> dict[str, bytes] | None:
    """Every file under root with its bytes (None when root does not exist)."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pickle_only_base(tiny_models: dict, root: Path) -> Path:
    """The tiny BERT with its weights only as pytorch_model.bin (a pickle): never to be loaded."""
    from safetensors.torch import load_file

    base = root / "pickle_base"
    shutil.copytree(tiny_models["bert"], base)
    torch.save(load_file(str(base / "model.safetensors")), base / "pytorch_model.bin")
    (base / "model.safetensors").unlink()
    assert (base / "pytorch_model.bin").is_file()
    return base


def broken_tokenizer_base(tiny_models: dict, root: Path) -> Path:
    """The tiny BERT with a tokenizer.json that is not JSON and no vocab to fall back on."""
    base = root / "broken_tokenizer"
    shutil.copytree(tiny_models["bert"], base)
    (base / "tokenizer.json").write_text("{ this is not a tokenizer")
    for name in ("vocab.txt",):
        (base / name).unlink(missing_ok=True)
    return base


def no_tokenizer_base(tiny_models: dict, root: Path) -> Path:
    """The tiny BERT without any tokenizer file."""
    base = root / "no_tokenizer"
    shutil.copytree(
        tiny_models["bert"], base, ignore=shutil.ignore_patterns("tokenizer*", "vocab*", "special_tokens*")
    )
    return base


CASES: dict[str, tuple[Callable[[dict, Path], str], str]] = {
    "unknown_model": (
        lambda models, root: "minilm-l7",
        "Unknown model 'minilm-l7'. Did you mean 'minilm-l6'",
    ),
    "missing_dir": (lambda models, root: str(root / "nowhere"), "does not exist"),
    "pickle_only": (lambda models, root: str(pickle_only_base(models, root)), "pytorch_model.bin"),
    "broken_tokenizer": (lambda models, root: str(broken_tokenizer_base(models, root)), "tokenizer"),
    "no_tokenizer": (lambda models, root: str(no_tokenizer_base(models, root)), "tokenizer"),
}


@pytest.mark.parametrize("existing", [False, True], ids=["new_dir", "existing_dir"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_model_leaves_nothing_behind(
    tiny_models: dict, review_csv: Path, tmp_path: Path, case: str, existing: bool
) -> None:
    make_model, message = CASES[case]
    model = make_model(tiny_models, tmp_path)
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    torch.manual_seed(0)
    with pytest.raises(NLPTransferError) as info:
        run(tiny_config(Path(model), review_csv, out, max_steps=2))
    text = str(info.value)
    assert message in text and "\n" not in text.strip(), text
    assert snapshot(out) == before


def test_refused_run_leaves_no_lock_file_in_an_existing_dir(review_csv: Path, tmp_path: Path) -> None:
    """The run lock's file is removed again when the refused run wrote nothing."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(NLPTransferError):
        run(tiny_config(Path("minilm-l7"), review_csv, out))
    assert snapshot(out) == {"notes.txt": b"mine"}
