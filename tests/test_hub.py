"""Hub push/download against an in-process stand-in: what arrives, what comes back, how it fails."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest

from hub_standin import HubStandin, make_output_dir
from nlp_transfer.card import write_card
from nlp_transfer.hub import HubError, download, push, select_files
from nlp_transfer.rundir import EVENTS_FILE, EXPORT_TMP, LOCK_FILE, RunDir

REPO = "tester/minilm-rt-lora"
EXPECTED = {
    ".gitattributes",  # created with the repo by the (stand-in) Hub
    "README.md",
    "nlp_transfer.json",
    "metrics.json",
    "run_config.yaml",
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything tries to resolve or connect to a non-loopback address."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def clean_hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token from the developer's machine, no offline flag, no endpoint from the environment."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))


@pytest.fixture
def hub() -> Iterator[HubStandin]:
    standin = HubStandin()
    standin.start(lifetime=60)
    try:
        yield standin
    finally:
        standin.stop()


STRAY_PICKLES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """An exported run plus what runs leave beside it locally: checkpoints/, logs/, events, lock, staging."""
    out = make_output_dir(tmp_path / "run")
    for name in (*STRAY_PICKLES, "notes.txt"):  # pickles refuse a push: tested on their own below
        (out / name).unlink()
    (out / LOCK_FILE).write_text("")
    (out / EVENTS_FILE).write_text('{"step": 1}\n')
    (out / EXPORT_TMP).mkdir()
    (out / EXPORT_TMP / "model.safetensors").write_bytes(b"half-written")
    (out / ".README.md.abc.tmp").write_text("half a card")
    return out


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_push_sends_exactly_the_allow_list(hub: HubStandin, run_dir: Path) -> None:
    url = push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)

    assert url == f"{hub.endpoint}/{REPO}"
    remote = hub.files(REPO)
    assert set(remote) == EXPECTED  # no checkpoints/, logs/, optimizer, scheduler, rng state or stray files
    for name in EXPECTED - {".gitattributes"}:
        assert remote[name] == (run_dir / name).read_bytes()
    assert (run_dir / "README.md").is_file()  # generated because it was missing
    api_calls = [r for r in hub.requests if r.path.startswith("/api/") and "validate-yaml" not in r.path]
    assert api_calls and all(r.authorization == f"Bearer {hub.token}" for r in api_calls)
    assert hub.calls("POST", r"/api/repos/create") and hub.calls("POST", rf"/api/models/{REPO}/commit/main")


def test_full_model_push_leaves_checkpoints_and_logs(hub: HubStandin, tmp_path: Path) -> None:
    """Even safetensors-only checkpoints and logs stay local: there is no option to upload them."""
    out = make_output_dir(tmp_path / "full", method="full", is_peft=False, with_clutter=False)
    (out / "checkpoints" / "step-100").mkdir(parents=True)
    (out / "checkpoints" / "step-100" / "model.safetensors").write_bytes(b"weights")
    (out / "logs").mkdir()
    (out / "logs" / "events.out.tfevents.1.host").write_bytes(b"tensorboard")
    push(out, "tester/full", token=hub.token, endpoint=hub.endpoint, private=True)
    remote = set(hub.files("tester/full"))
    assert {"config.json", "model.safetensors"} <= remote and "adapter_config.json" not in remote
    assert not any(f.startswith(("checkpoints/", "logs/")) for f in remote)
    assert hub.repos["tester/full"].private


PICKLE_CASES = {
    "adapter_model.bin instead of safetensors": "adapter_model.bin",
    "stray torch file": "training_args.bin",
    ".pt": "extra_head.pt",
    ".pkl": "label_encoder.pkl",
    ".pth": "rng_state.pth",
    ".ckpt": "last.ckpt",
    "pickle in a subfolder of the run": "extra/head.pt",
}


@pytest.mark.parametrize("case", list(PICKLE_CASES))
def test_pickle_is_never_uploaded(case: str, hub: HubStandin, run_dir: Path) -> None:
    """Issue 14: a run holding a pickle weight file is refused with one line and nothing is uploaded."""
    name = PICKLE_CASES[case]
    if case.startswith("adapter_model.bin"):
        (run_dir / "adapter_model.safetensors").rename(run_dir / name)  # what PEFT writes without safetensors
    else:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(b"\x80\x04pickle")
    before = tree_hash(run_dir)
    with pytest.raises(HubError) as info:
        push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    message = str(info.value)
    assert Path(name).name in message and "safetensors" in message and "\n" not in message
    assert not hub.calls("POST", r"/commit/") and not hub.repos  # the stand-in received nothing
    assert tree_hash(run_dir) == before


def test_checkpoints_stay_local_by_default(hub: HubStandin, run_dir: Path) -> None:
    """Accelerate's checkpoints hold pickles (optimizer.bin, random_states_0.pkl): not uploaded, not refused."""
    assert (run_dir / "checkpoints" / "step-100" / "optimizer.pt").is_file()
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert not any(f.startswith(("checkpoints/", "logs/")) for f in hub.files(REPO))


def test_download_returns_the_same_bytes(hub: HubStandin, run_dir: Path, tmp_path: Path) -> None:
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    local = download(REPO, token=hub.token, endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    got = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert got == EXPECTED - {".gitattributes"}
    for name in got:
        assert (local / name).read_bytes() == (run_dir / name).read_bytes()


def test_download_never_fetches_pickles_or_local_state(
    hub: HubStandin, run_dir: Path, tmp_path: Path
) -> None:
    files = {f: (run_dir / f).read_bytes() for f in select_files(run_dir)}
    extra = {
        "pytorch_model.bin": b"x",
        "head.pt": b"x",
        "checkpoints/step-1/optimizer.bin": b"x",
        "logs/a": b"x",
    }
    hub.add_repo("tester/mixed", {**files, **extra})
    local = download("tester/mixed", token=hub.token, endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    got = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert got == set(files)
    RunDir(local).require_safetensors()


def test_push_to_a_new_branch_leaves_main_alone(hub: HubStandin, run_dir: Path, tmp_path: Path) -> None:
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint, revision="v2", commit_message="second try")
    assert set(hub.files(REPO, "main")) == {".gitattributes"}
    assert set(hub.files(REPO, "v2")) == EXPECTED
    local = download(REPO, revision="v2", token=hub.token, endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    assert (local / "adapter_model.safetensors").read_bytes() == (
        run_dir / "adapter_model.safetensors"
    ).read_bytes()


def test_re_push_of_the_same_kind_of_run_updates(hub: HubStandin, run_dir: Path) -> None:
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9}}))
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert json.loads(hub.files(REPO)["metrics.json"]) == {"test": {"accuracy": 0.9}}


def test_user_card_is_kept_and_peft_template_replaced(hub: HubStandin, run_dir: Path) -> None:
    (run_dir / "README.md").write_text("# my own words\n")
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert hub.files(REPO)["README.md"] == b"# my own words\n"

    (run_dir / "README.md").write_text(
        "---\nlibrary_name: peft\n---\n## Model Details\n[More Information Needed]\n"
    )
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert b"nlp-transfer" in hub.files(REPO)["README.md"]


def test_exported_card_is_renamed_for_the_repo_unless_edited(hub: HubStandin, run_dir: Path) -> None:
    write_card(run_dir)  # what export does: the card names no repo yet
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert f'load_predictor("{REPO}")'.encode() in hub.files(REPO)["README.md"]
    assert (run_dir / "README.md").read_bytes() == hub.files(REPO)["README.md"]

    edited = (run_dir / "README.md").read_text() + "\nTrained for my thesis.\n"
    (run_dir / "README.md").write_text(edited)
    push(run_dir, "tester/other-name", token=hub.token, endpoint=hub.endpoint)
    assert hub.files("tester/other-name")["README.md"] == edited.encode()


def test_force_replaces_a_different_model(hub: HubStandin, run_dir: Path) -> None:
    other = {
        "task": "summarisation",
        "is_peft": False,
        "base_model_hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    }
    hub.add_repo(REPO, {"nlp_transfer.json": json.dumps(other).encode(), "model.safetensors": b"old"})
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint, force=True)
    assert set(hub.files(REPO)) == EXPECTED - {".gitattributes"}  # the old model's files are gone


def _conflicting(hub: HubStandin) -> None:
    other = {
        "task": "summarisation",
        "is_peft": False,
        "base_model_hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    }
    hub.add_repo(REPO, {"nlp_transfer.json": json.dumps(other).encode(), "model.safetensors": b"old"})


def _foreign(hub: HubStandin) -> None:
    hub.add_repo(REPO, {"pytorch_model.bin": b"someone else's", "README.md": b"# theirs"})


def _read_only_token(hub: HubStandin) -> None:
    hub.token_role = "read"


def _forbidden(hub: HubStandin) -> None:
    hub.fail_with = 403


def _forbidden_on_existing_repo(hub: HubStandin) -> None:
    """403 only at upload time: the card push wrote must be taken back."""
    hub.add_repo(REPO, {})
    hub.fail_with = 403


def _revoked(hub: HubStandin) -> None:
    hub.fail_with = 401


FAILURES = {
    "no token": (None, "no Hugging Face token found: set HF_TOKEN, run `hf auth login`"),
    "401": (_revoked, "rejected the token (401)"),
    "403": (_forbidden, f"lacks write access to {REPO} (403)"),
    "403 at upload": (_forbidden_on_existing_repo, f"lacks write access to {REPO} (403)"),
    "read-only token": (_read_only_token, "read-only"),
    "other model": (
        _conflicting,
        "already holds a summarisation full model on HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "foreign files": (_foreign, "already holds files not written by nlp-transfer (pytorch_model.bin)"),
    "endpoint down": (None, "cannot reach the Hub at http://127.0.0.1:"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_push_is_one_clean_line_and_touches_nothing(
    case: str,
    hub: HubStandin,
    run_dir: Path,
    dead_endpoint: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    setup, expected = FAILURES[case]
    if setup:
        setup(hub)
    token = None if case == "no token" else hub.token
    endpoint = dead_endpoint if case == "endpoint down" else hub.endpoint
    before = tree_hash(run_dir)

    with pytest.raises(HubError) as info:
        push(run_dir, REPO, token=token, endpoint=endpoint)

    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    if case == "endpoint down":
        assert dead_endpoint in message
    if case in ("other model", "foreign files"):
        assert "force=True" in message
    if case == "403 at upload":  # got as far as uploading, then the generated card was taken back
        assert hub.calls("POST", r"/preupload/") and not (run_dir / "README.md").exists()
    assert tree_hash(run_dir) == before
    captured = capsys.readouterr()
    for text in (message, captured.out, captured.err, caplog.text):
        assert hub.token not in text


def test_token_stored_in_the_run_is_refused(hub: HubStandin, run_dir: Path) -> None:
    (run_dir / "run_config.yaml").write_text(f"hub_token: {hub.token}\n")
    with pytest.raises(HubError, match="run_config.yaml contains your Hub token") as info:
        push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert hub.token not in str(info.value)
    assert not hub.requests  # refused before any network traffic


def test_token_from_environment(hub: HubStandin, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", hub.token)
    push(run_dir, REPO, endpoint=hub.endpoint)
    assert hub.calls("POST", r"/commit/")[0].authorization == f"Bearer {hub.token}"


def test_offline_mode_is_named(hub: HubStandin, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)


def test_select_files_by_exclusion(run_dir: Path, tmp_path: Path) -> None:
    """Whatever export or the user put in the run goes up; local state, dot-files and symlinks do not."""
    assert set(select_files(run_dir)) == EXPECTED - {".gitattributes", "README.md"}
    (run_dir / "tokenizer.model.v9").write_bytes(b"a tokenizer file transformers invents next year")
    (run_dir / "notes.txt").write_text("mine")
    (tmp_path / "secret.txt").write_text("outside the run")
    (run_dir / "link.txt").symlink_to(tmp_path / "secret.txt")
    files = set(select_files(run_dir))
    assert {"tokenizer.model.v9", "notes.txt"} <= files and "link.txt" not in files
    assert not any(f.startswith((".", "checkpoints/", "logs/")) or f == EVENTS_FILE for f in files)


def test_incomplete_run_is_refused_before_any_request(hub: HubStandin, run_dir: Path) -> None:
    (run_dir / "adapter_model.safetensors").unlink()
    with pytest.raises(HubError, match="adapter_model.safetensors is missing"):
        push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    assert not hub.requests


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing repo", "no model repo tester/nothing-here on"),
        ("not an export", "is not an nlp-transfer export"),
        ("401", "rejected the token (401)"),
        ("endpoint down", "cannot reach the Hub at http://127.0.0.1:"),
    ],
)
def test_download_failures(
    case: str, expected: str, hub: HubStandin, dead_endpoint: str, tmp_path: Path
) -> None:
    repo = "tester/nothing-here"
    if case == "not an export":
        hub.add_repo(repo, {"pytorch_model.bin": b"x"})
    if case == "401":
        hub.fail_with = 401
    endpoint = dead_endpoint if case == "endpoint down" else hub.endpoint
    with pytest.raises(HubError) as info:
        download(repo, token=hub.token, endpoint=endpoint, cache_dir=tmp_path / "cache")
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert hub.token not in str(info.value)


def test_download_uses_the_cache_when_offline(
    hub: HubStandin, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(run_dir, REPO, token=hub.token, endpoint=hub.endpoint)
    online = download(REPO, token=hub.token, endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    seen = len(hub.requests)
    assert download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path / "cache") == online
    assert len(hub.requests) == seen
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        download("tester/never-fetched", endpoint=hub.endpoint, cache_dir=tmp_path / "cache")


def test_the_loopback_guard_bites(run_dir: Path) -> None:
    """Proof that the autouse guard would catch a stray call to the real Hub."""
    with pytest.raises(AssertionError, match="tried to resolve 'huggingface.co'"):
        push(run_dir, REPO, token="hf_guardCheckOnly000000000", endpoint="https://huggingface.co")
