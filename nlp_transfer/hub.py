"""Push an exported run to the Hugging Face Hub and fetch it back by repo id.

What goes up is chosen by exclusion (`RunDir.published_files`): everything in the run except
checkpoints/, logs/, the events file, dot-files (lock, staging, temp files) and symlinks, so new
tokenizer or model files that transformers starts writing need no list here. Only safetensors
weights travel: a pickle file among them refuses the push before any request. Every failure becomes
one `HubError` line that names the fix, never contains the token, and leaves the run as it was.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import huggingface_hub as hf
import huggingface_hub.errors as hfe

from nlp_transfer import rundir as rd
from nlp_transfer.card import is_own_card, is_placeholder_card, render_card
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.rundir import CARD_FILE, META_FILE, RunDir

logger = logging.getLogger(__name__)
# Files a Hub repo may hold before a first push without it being "someone else's model".
HARMLESS_REMOTE = frozenset({".gitattributes", CARD_FILE})
# Never fetched: local-only state, dot-files and every pickle format (loading one can run code).
DOWNLOAD_IGNORE = [".*", *(f"{d}/*" for d in rd.LOCAL_ONLY), *(f"*{s}" for s in rd.PICKLE_SUFFIXES)]
# Text files small enough to scan for an accidentally stored token before they go public.
SCANNED_SUFFIXES = frozenset({".json", ".jsonl", ".yaml", ".yml", ".md", ".txt", ".jinja", ".cfg", ".toml"})
SCAN_LIMIT = 20_000_000  # bytes
TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{16,}")
NO_TOKEN = "no Hugging Face token found: set HF_TOKEN, run `hf auth login`, or pass token=... (a token with write access)"
NETWORK_ERRORS = {"TransportError", "ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError"}


class HubError(NLPTransferError, RuntimeError):
    """A push to or download from the Hub failed; the message is one line and never holds the token."""


def identity(meta: dict[str, Any]) -> str:
    """What makes two pushes 'the same model' (task, base, adapter or not): replacing one is an update."""
    base = meta.get("base_model_hub_id") or meta.get("base_model") or "?"
    return f"{meta.get('task') or '?'} {'adapter' if meta.get('is_peft') else 'full model'} on {base}"


def select_files(output_dir: Path | str) -> list[str]:
    """The run's files a push uploads (relative posix paths). Checkpoints never go: Accelerate's hold
    pickles (optimizer.bin, random_states_0.pkl), and only safetensors are uploaded."""
    run = RunDir(output_dir)
    try:
        run.meta()
    except NLPTransferError as e:
        raise HubError(str(e)) from e
    return run.published_files()


def _check_uploadable(run: RunDir, files: list[str], token: str) -> None:
    """Refuse a run that could not be loaded back, holds pickle files, or holds the token itself."""
    if pickles := [f for f in files if rd.is_pickle(f)]:
        raise HubError(
            f"only safetensors weights are uploaded and {', '.join(pickles)} are pickle files: remove them"
        )
    needs = (rd.ADAPTER_CONFIG, rd.ADAPTER_WEIGHTS) if run.is_peft else (rd.MODEL_CONFIG,)
    for name in needs:
        if name not in files:
            raise HubError(f"{run.path} is incomplete: {name} is missing; re-export the run before pushing")
    try:
        run.require_safetensors()
    except NLPTransferError as e:
        raise HubError(str(e)) from e
    scanned = [
        f for f in files if Path(f).suffix in SCANNED_SUFFIXES and (run.path / f).stat().st_size < SCAN_LIMIT
    ]
    for rel in (f for f in scanned if token.encode() in (run.path / f).read_bytes()):
        raise HubError(f"{rel} contains your Hub token; remove it from the file before pushing")


def _card_to_upload(run: RunDir, repo_id: str) -> str | None:
    """The card to upload, or None to upload the one in place untouched.

    Rendered when there is none, when only PEFT's unfilled template is there, or when it is our own
    card exactly as rendered (for a local dir or another repo), so the Hub copy names this repo.
    A card anyone edited is the user's and goes up as it is.
    """
    text = run.card_text()
    try:
        if text is not None and not is_placeholder_card(text):
            named = re.search(r'load_predictor\("([^"]+)"\)', text) if is_own_card(text) else None
            repo = named.group(1) if named and named.group(1) != "path/to/output_dir" else None
            if not is_own_card(text) or text != render_card(run.path, repo_id=repo):
                return None
        return render_card(run.path, repo_id=repo_id)
    except NLPTransferError as e:
        raise HubError(f"cannot write the model card: {e}") from e


def _scrub(text: str, token: str | None) -> str:
    return TOKEN_LIKE.sub("hf_***", text.replace(token, "***") if token else text)


def _describe(
    e: BaseException, repo_id: str, endpoint: str, revision: str | None, write: bool, token_given: bool
) -> str | None:
    """The one line a user can act on for a huggingface_hub / transport error; None for a bug of ours."""
    chain = [e]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(cause)
    kinds = {c for x in chain for c in type(x).__mro__}  # what was raised, and while handling what
    status = getattr(getattr(e, "response", None), "status_code", None)
    need = "write" if write else "read"
    if isinstance(e, hfe.LocalTokenNotFoundError):
        return NO_TOKEN
    if hfe.OfflineModeIsEnabled in kinds:
        return f"offline mode is on (HF_HUB_OFFLINE is set): unset it to reach the Hub at {endpoint}"
    if ConnectionError in kinds or NETWORK_ERRORS & {c.__name__ for c in kinds}:  # httpx's, by name
        return f"cannot reach the Hub at {endpoint} ({type(e).__name__}); check the network, proxy or HF_ENDPOINT"
    if status == 401 and not token_given:
        return f"{repo_id} is private or missing on {endpoint} and no token was sent: set HF_TOKEN or run `hf auth login`"
    if status == 401:
        return f"the Hub at {endpoint} rejected the token (401): it is invalid, expired or revoked; set a valid HF_TOKEN or run `hf auth login`"
    if status == 403:
        return f"the token lacks {need} access to {repo_id} (403): use a token with {need} permission for it"
    if isinstance(e, hfe.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on {endpoint}"
    if isinstance(e, hfe.RepositoryNotFoundError) or status == 404:
        return f"no model repo {repo_id} on {endpoint} (or it is private and this token cannot see it)"
    if isinstance(e, hfe.LocalEntryNotFoundError):
        return f"{repo_id} could not be fetched from {endpoint} and is not in the local cache"
    if isinstance(e, hfe.HfHubHTTPError):
        server = next((s for s in str(getattr(e, "server_message", None) or e).splitlines() if s.strip()), "")
        return f"the Hub at {endpoint} answered {status} for {repo_id}: {server.strip()[:200]}"
    if isinstance(e, ValueError) and "metadata" in str(e):
        return f"the Hub rejected the model card metadata in {CARD_FILE}: {e}"
    return f"{type(e).__name__}: {e}" if isinstance(e, (OSError, ValueError)) else None


@contextmanager
def _hub_errors(
    repo_id: str, endpoint: str, token: str | None, *, revision: str | None, write: bool
) -> Iterator[None]:
    """Re-raise Hub failures as one scrubbed HubError line (the cause stays chained for debugging)."""
    try:
        yield
    except HubError:
        raise
    except Exception as e:
        message = _describe(e, repo_id, endpoint, revision, write, bool(token))
        if message is None:
            raise
        logger.debug("Hub call failed: %s", _scrub(repr(e), token))
        raise HubError(_scrub(" ".join(message.split()), token)) from e


def resolve_endpoint(endpoint: str | None = None) -> str:
    """Explicit argument, else HF_ENDPOINT as it is *now* (the hub library froze it at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or hf.constants.ENDPOINT).rstrip("/")


def _remote_files(api: hf.HfApi, repo_id: str, revision: str | None) -> tuple[list[str] | None, bool]:
    """(files at revision or None if the repo is absent, whether the branch must be created)."""
    try:
        return api.list_repo_files(repo_id, revision=revision), False
    except hfe.RevisionNotFoundError:
        return api.list_repo_files(repo_id), True
    except hfe.RepositoryNotFoundError as e:
        if getattr(e.response, "status_code", 404) == 404:
            return None, revision is not None
        raise


def _conflict(api: hf.HfApi, repo_id: str, revision: str | None, files: list[str], mine: str) -> str | None:
    """Why pushing would clobber a different model, or None if the repo is empty or holds this kind of run.

    A repo that holds an nlp-transfer run for another task, base model or kind (adapter vs full
    model), or holds files that nlp-transfer did not write, is someone else's model.
    """
    if META_FILE in files:
        with tempfile.TemporaryDirectory(prefix="nlp-transfer-hub-") as tmp:
            api.hf_hub_download(repo_id, META_FILE, revision=revision, local_dir=tmp)
            try:
                theirs = identity(RunDir(tmp).meta())
            except NLPTransferError:
                return f"{repo_id} holds an unreadable {META_FILE}"
        return None if theirs == mine else f"{repo_id} already holds a {theirs}, this run is a {mine}"
    foreign = sorted(set(files) - HARMLESS_REMOTE)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return f"{repo_id} already holds files not written by nlp-transfer ({shown})"
    return None


def _token(token: str | None) -> str | None:
    """The given token, else the stored one (HF_TOKEN or `hf auth login`), else None."""
    try:
        return token or hf.get_token()
    except Exception:  # OIDC exchange errors surface as "no usable token"
        return None


def _resolve_token(token: str | None) -> str:
    if not (token := _token(token)):
        raise HubError(NO_TOKEN)
    return token


def push(
    output_dir: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    force: bool = False,
) -> str:
    """Upload an exported run to `repo_id` (created if needed) in one commit and return the repo URL.

    `private` applies only when the repo is created. `force=True` replaces a repo that holds a
    different model (its old files are deleted in the same commit) instead of refusing. The card
    that went up is written locally only after the commit succeeded.
    """
    run = RunDir(Path(output_dir).resolve())
    files = select_files(run.path)
    token = _resolve_token(token)
    _check_uploadable(run, files, token)
    card = _card_to_upload(run, repo_id)
    if card and token in card:
        raise HubError(f"the generated {CARD_FILE} would contain your Hub token; remove it from the run")
    url = resolve_endpoint(endpoint)
    api = hf.HfApi(endpoint=url, token=token, library_name="nlp-transfer")
    with _hub_errors(repo_id, url, token, revision=revision, write=True):
        role = ((api.whoami(token=token).get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":  # a bad token fails here, before anything is created
            raise HubError(
                f"the token is read-only and cannot write to {repo_id} (403): create a token with write access"
            )
        remote, new_branch = _remote_files(api, repo_id, revision)
        reason = _conflict(api, repo_id, None if new_branch else revision, remote or [], identity(run.meta()))
        if reason and not force:
            raise HubError(f"{reason}; pass force=True to replace its content or choose another repo_id")
        if remote is None:  # create only what is missing: a token may write to a repo it could not create
            api.create_repo(repo_id, private=private, exist_ok=True)
        if new_branch:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        sources: dict[str, str | bytes] = {f: str(run.path / f) for f in files}
        if card:  # the rendered card replaces the file in place
            sources[CARD_FILE] = card.encode()
        uploads = [hf.CommitOperationAdd(f, source) for f, source in sources.items()]
        stale = sorted(set(remote or []) - set(files) - {".gitattributes", CARD_FILE}) if reason else []
        logger.info("pushing %d files from %s to %s at %s", len(uploads), run.path, repo_id, url)
        api.create_commit(
            repo_id,
            [*uploads, *(hf.CommitOperationDelete(f) for f in stale)],
            commit_message=commit_message or f"Upload {run.method} run from nlp-transfer",
            revision=revision,
        )
    if card:
        run.write_text(CARD_FILE, card)
    return f"{url}/{repo_id}"


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: Path | str | None = None,
) -> Path:
    """Fetch a pushed run (no local-only files, no pickles) into the HF cache and return its local dir."""
    url = resolve_endpoint(endpoint)
    token = _token(token)  # None: anonymous, which works for public repos
    with _hub_errors(repo_id, url, token, revision=revision, write=False):
        path = Path(
            hf.snapshot_download(
                repo_id,
                revision=revision,
                token=token,
                endpoint=url,
                cache_dir=cache_dir,
                ignore_patterns=DOWNLOAD_IGNORE,
                library_name="nlp-transfer",
            )
        )
    if not RunDir(path).is_finished():
        where = f" at {revision}" if revision else ""
        raise HubError(f"{repo_id}{where} is not an nlp-transfer export: it has no {META_FILE}")
    return path
