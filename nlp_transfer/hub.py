"""Push an exported run to the Hugging Face Hub and fetch it back by repo id.

Only the files a user needs to load and judge the model go up (weights, tokenizer, run metadata,
metrics, config, card); optimizer states, checkpoints and logs stay local unless asked for. Every
failure becomes one ``HubError`` line that names the fix, never contains the token, and leaves the
local output dir as it was.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, get_token, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from nlp_transfer.card import CARD_FILE, is_own_card, is_placeholder_card, render_card, write_atomic
from nlp_transfer.errors import NLPTransferError

logger = logging.getLogger(__name__)

META_FILE = "nlp_transfer.json"
RUN_FILES = (META_FILE, "metrics.json", "run_config.yaml", CARD_FILE)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
FULL_MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
)
SHARD_PATTERN = "model-*-of-*.safetensors"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
)
EXTRA_DIRS = ("checkpoints", "logs")
DOWNLOAD_PATTERNS = [*RUN_FILES, *ADAPTER_FILES, *FULL_MODEL_FILES, SHARD_PATTERN, *TOKENIZER_FILES]
# Files a Hub repo may hold before a first push without it being "someone else's model".
HARMLESS_REMOTE = frozenset({".gitattributes", CARD_FILE})
# Text files small enough to scan for an accidentally stored token before they go public.
SCANNED_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".md", ".txt", ".jinja", ".cfg", ".toml"})
SCAN_LIMIT_BYTES = 20_000_000
TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{16,}")
NO_TOKEN = "no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass token=... (a token with write access)"


class HubError(NLPTransferError, RuntimeError):
    """A push to or download from the Hub failed; the message is one line and never holds the token."""


@dataclass(frozen=True)
class RunIdentity:
    """What makes two pushes 'the same model': replacing one with the other is an update, not a clash."""

    task: str
    base: str
    is_peft: bool

    @classmethod
    def of(cls, meta: dict[str, Any]) -> RunIdentity:
        base = meta.get("base_model_hub_id") or meta.get("base_model") or "?"
        return cls(task=str(meta.get("task") or "?"), base=str(base), is_peft=bool(meta.get("is_peft")))

    def describe(self) -> str:
        kind = "adapter" if self.is_peft else "full model"
        return f"{self.task} {kind} on {self.base}"


# --------------------------------------------------------------------------------- local checks


def _read_meta(out: Path) -> dict[str, Any]:
    path = out / META_FILE
    if not out.is_dir():
        raise HubError(f"output dir {out} does not exist")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HubError(f"{out} is not an nlp-transfer output dir: {META_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f"{path} is unreadable ({type(e).__name__}); re-export the run") from None
    if not isinstance(meta, dict):
        raise HubError(f"{path} should hold a JSON object; re-export the run")
    return meta


def _tree_files(root: Path) -> list[str]:
    """Regular files under root (no symlinks: they could point outside the run), relative, sorted."""
    return sorted(
        p.relative_to(root.parent).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    )


def select_files(output_dir: Path | str, *, include_checkpoints: bool = False) -> list[str]:
    """The files a push uploads (relative posix paths): the export contract's allow-list, nothing else."""
    out = Path(output_dir)
    meta = _read_meta(out)
    weights = ADAPTER_FILES if meta.get("is_peft") else FULL_MODEL_FILES
    wanted = {*RUN_FILES, *weights, *TOKENIZER_FILES}
    files = [p.name for p in out.iterdir() if p.is_file() and not p.is_symlink()]
    chosen = [f for f in files if f in wanted or (not meta.get("is_peft") and Path(f).match(SHARD_PATTERN))]
    if include_checkpoints:
        for name in EXTRA_DIRS:
            if (out / name).is_dir() and not (out / name).is_symlink():
                chosen += _tree_files(out / name)
    return sorted(set(chosen))


def _check_complete(out: Path, meta: dict[str, Any], files: list[str]) -> None:
    """Refuse to publish a run that could not be loaded back."""
    if meta.get("is_peft"):
        needs = [("adapter_config.json",), ("adapter_model.safetensors", "adapter_model.bin")]
    else:
        needs = [("config.json",), ("model.safetensors", "model.safetensors.index.json")]
    for options in needs:
        if not any(o in files for o in options):
            raise HubError(f"{out} is incomplete: {options[0]} is missing; re-export the run before pushing")


def _check_no_token_inside(out: Path, files: list[str], token: str) -> None:
    """A token saved in a config or log by accident must not become public with the upload."""
    needle = token.encode()
    for rel in files:
        path = out / rel
        if path.suffix not in SCANNED_SUFFIXES or path.stat().st_size > SCAN_LIMIT_BYTES:
            continue
        if needle in path.read_bytes():
            raise HubError(f"{rel} contains your Hub token; remove it from the file before pushing")


# ------------------------------------------------------------------------------ error translation


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return TOKEN_LIKE.sub("hf_***", text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _in_chain(e: BaseException | None, kind: type[BaseException]) -> bool:
    while e is not None:
        if isinstance(e, kind):
            return True
        e = e.__cause__ or e.__context__
    return False


def _is_network_error(e: BaseException | None) -> bool:
    """Connection trouble anywhere in the cause chain (httpx/httpx2 classes matched by name)."""
    names = {"TransportError", "ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError"}
    while e is not None:
        if _in_chain(e, OfflineModeIsEnabled):
            return False
        if isinstance(e, ConnectionError) or names & {c.__name__ for c in type(e).__mro__}:
            return True
        e = e.__cause__ or e.__context__
    return False


def _server_message(e: HfHubHTTPError) -> str:
    server = getattr(e, "server_message", None) or str(e)
    first = next((line for line in str(server).splitlines() if line.strip()), "")
    return first.strip()[:200]


def _describe(
    e: BaseException,
    *,
    repo_id: str,
    endpoint: str,
    revision: str | None,
    write: bool,
    token_given: bool = True,
) -> str:
    """Turn a huggingface_hub / transport error into the one line a user can act on."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, LocalTokenNotFoundError):
        return NO_TOKEN
    if _in_chain(e, OfflineModeIsEnabled):
        return f"offline mode is on (HF_HUB_OFFLINE is set): unset it to reach the Hub at {endpoint}"
    if _is_network_error(e):
        return f"cannot reach the Hub at {endpoint} ({type(e).__name__}); check the network, proxy or HF_ENDPOINT"
    if status == 401 and not token_given:
        return f"{repo_id} is private or missing on {endpoint} and no token was sent: set HF_TOKEN or run `hf auth login`"
    if status == 401:
        return (
            f"the Hub at {endpoint} rejected the token (401): it is invalid, expired or revoked; "
            "set a valid HF_TOKEN or run `hf auth login`"
        )
    if status == 403:
        need = "write" if write else "read"
        return f"the token lacks {need} access to {repo_id} (403): use a token with {need} permission for it"
    if isinstance(e, RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on {endpoint}"
    if isinstance(e, RepositoryNotFoundError) or status == 404:
        return f"no model repo {repo_id} on {endpoint} (or it is private and this token cannot see it)"
    if isinstance(e, LocalEntryNotFoundError):
        return f"{repo_id} could not be fetched from {endpoint} and is not in the local cache"
    if isinstance(e, HfHubHTTPError):
        return f"the Hub at {endpoint} answered {status} for {repo_id}: {_server_message(e)}"
    if isinstance(e, ValueError) and "metadata" in str(e):
        return f"the Hub rejected the model card metadata in {CARD_FILE}: {_one_line(str(e))}"
    return f"{type(e).__name__}: {e}"


HANDLED = (HfHubHTTPError, LocalEntryNotFoundError, LocalTokenNotFoundError, OSError, ValueError)


@contextmanager
def _hub_errors(
    repo_id: str, endpoint: str, token: str | None, *, revision: str | None, write: bool
) -> Iterator[None]:
    """Re-raise Hub failures as one scrubbed HubError line; the original is logged (scrubbed) at debug."""
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        if not (isinstance(e, HANDLED) or _is_network_error(e)):
            raise
        logger.debug("Hub call failed: %s", _scrub(repr(e), token))
        message = _describe(
            e, repo_id=repo_id, endpoint=endpoint, revision=revision, write=write, token_given=bool(token)
        )
        raise HubError(_scrub(_one_line(message), token)) from None


# ------------------------------------------------------------------------------------- remote side


def resolve_endpoint(endpoint: str | None = None) -> str:
    """Explicit argument, else HF_ENDPOINT as it is *now* (the hub library froze it at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _remote_files(api: HfApi, repo_id: str, revision: str | None) -> tuple[list[str] | None, bool]:
    """(files at revision or None if the repo is absent, whether the branch must be created)."""
    try:
        return api.list_repo_files(repo_id, revision=revision), False
    except RevisionNotFoundError:
        return api.list_repo_files(repo_id), True
    except RepositoryNotFoundError as e:
        if getattr(e.response, "status_code", 404) == 404:
            return None, revision is not None
        raise


def _remote_identity(api: HfApi, repo_id: str, revision: str | None) -> RunIdentity | None:
    with tempfile.TemporaryDirectory(prefix="nlp-transfer-hub-") as tmp:
        path = api.hf_hub_download(repo_id, META_FILE, revision=revision, cache_dir=tmp)
        try:
            meta = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
    return RunIdentity.of(meta) if isinstance(meta, dict) else None


def _conflict(
    api: HfApi, repo_id: str, revision: str | None, files: list[str], mine: RunIdentity
) -> str | None:
    """Why pushing would clobber a different model, or None if the repo is empty or holds this kind of run.

    Rule: a repo that already holds an nlp-transfer run for another task, base model or kind
    (adapter vs full model), or holds files that nlp-transfer did not write, is someone else's model.
    """
    if META_FILE in files:
        theirs = _remote_identity(api, repo_id, revision)
        if theirs is None:
            return f"{repo_id} holds an unreadable {META_FILE}"
        if theirs != mine:
            return f"{repo_id} already holds a {theirs.describe()}, this run is a {mine.describe()}"
        return None
    foreign = sorted(set(files) - HARMLESS_REMOTE)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return f"{repo_id} already holds files not written by nlp-transfer ({shown})"
    return None


def _literal(path: str) -> str:
    """An fnmatch pattern that matches exactly this path (the upload filter speaks globs)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


@contextmanager
def _card_for_upload(out: Path, card_text: str | None) -> Iterator[None]:
    """Put the generated card in place for the upload; put back what was there if the upload fails."""
    if card_text is None:
        yield
        return
    path = out / CARD_FILE
    before = path.read_bytes() if path.exists() else None
    write_atomic(path, card_text)
    try:
        yield
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)
        raise


def _card_to_write(out: Path, repo_id: str) -> str | None:
    """The card to (re)write before upload, or None to upload the one in place untouched.

    Written when there is none, when only PEFT's unfilled template is there, or when it is our own
    card exactly as rendered (for a local dir or another repo), so the Hub copy names this repo.
    A card anyone edited is the user's and goes up as it is.
    """
    path = out / CARD_FILE
    try:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if not (is_placeholder_card(text) or _is_unedited_own_card(out, text)):
                return None
        return render_card(out, repo_id=repo_id)
    except NLPTransferError as e:
        raise HubError(f"cannot write the model card: {e}") from None


def _is_unedited_own_card(out: Path, text: str) -> bool:
    if not is_own_card(text):
        return False
    match = re.search(r'load_predictor\("([^"]+)"\)', text)
    named = match.group(1) if match and match.group(1) != "path/to/output_dir" else None
    return text == render_card(out, repo_id=named)


def _resolve_token(token: str | None) -> str:
    try:
        token = token or get_token()
    except Exception:  # OIDC exchange errors surface as "no usable token"
        token = None
    if not token:
        raise HubError(NO_TOKEN)
    return token


def _preflight(api: HfApi, repo_id: str, token: str) -> None:
    """Check the token before anything else so a bad one fails fast and touches nothing."""
    info = api.whoami(token=token)
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubError(
            f"the token is read-only and cannot write to {repo_id} (403): create a token with write access"
        )


def push(
    output_dir: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    include_checkpoints: bool = False,
    endpoint: str | None = None,
    force: bool = False,
) -> str:
    """Upload an exported run to ``repo_id`` (created if needed) and return the repo URL.

    ``private`` applies only when the repo is created. ``force=True`` replaces a repo that holds a different model (its old files are deleted in the
    same commit) instead of refusing.
    """
    out = Path(output_dir).resolve()
    meta = _read_meta(out)
    files = select_files(out, include_checkpoints=include_checkpoints)
    _check_complete(out, meta, files)
    token = _resolve_token(token)
    _check_no_token_inside(out, files, token)
    card_text = _card_to_write(out, repo_id)
    if card_text and token in card_text:
        raise HubError(
            f"the generated {CARD_FILE} would contain your Hub token; remove it from the run's files"
        )
    url = resolve_endpoint(endpoint)
    if constants.is_offline_mode():
        raise HubError(f"offline mode is on (HF_HUB_OFFLINE is set): unset it to push to {url}")
    api = HfApi(endpoint=url, token=token, library_name="nlp-transfer")
    with _hub_errors(repo_id, url, token, revision=revision, write=True):
        _preflight(api, repo_id, token)
        remote, new_branch = _remote_files(api, repo_id, revision)
        reason = _conflict(
            api, repo_id, revision if not new_branch else None, remote or [], RunIdentity.of(meta)
        )
        if reason and not force:
            raise HubError(f"{reason}; pass force=True to replace its content or choose another repo_id")
        # Only create what is missing: an existing repo may be writable by a token that cannot create repos.
        repo_url = (
            f"{url}/{repo_id}"
            if remote is not None
            else api.create_repo(repo_id, private=private, exist_ok=True)
        )
        if new_branch:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        uploads = sorted({*files, CARD_FILE})
        logger.info("pushing %d files from %s to %s at %s", len(uploads), out, repo_id, url)
        with _card_for_upload(out, card_text):
            api.upload_folder(
                repo_id=repo_id,
                folder_path=out,
                allow_patterns=[_literal(f) for f in uploads],
                delete_patterns=["*"] if reason else None,
                commit_message=commit_message
                or f"Upload {meta.get('method', 'model')} run from nlp-transfer",
                revision=revision,
            )
    return str(repo_url)


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: Path | str | None = None,
) -> Path:
    """Fetch a pushed run (allow-listed files only) into the HF cache and return its local dir."""
    url = resolve_endpoint(endpoint)
    try:
        token = token or get_token()
    except Exception:  # anonymous download still works for public repos
        token = None
    with _hub_errors(repo_id, url, token, revision=revision, write=False):
        path = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                token=token,
                endpoint=url,
                cache_dir=cache_dir,
                allow_patterns=DOWNLOAD_PATTERNS,
                library_name="nlp-transfer",
            )
        )
    if not (path / META_FILE).is_file():
        where = f" at {revision}" if revision else ""
        raise HubError(f"{repo_id}{where} is not an nlp-transfer export: it has no {META_FILE}")
    return path
