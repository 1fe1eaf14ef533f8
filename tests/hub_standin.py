"""A tiny in-memory Hugging Face Hub for tests, on 127.0.0.1 only.

It speaks just enough of the Hub's HTTP API for ``huggingface_hub`` to create repos, upload folders
(preupload + NDJSON commit, always "regular" mode so no LFS/xet storage is needed), list and
download files, and call whoami / validate-yaml. Switches simulate a revoked token (401), a token
without write access (403) and a repo that already holds something else. Every request is recorded
so tests can check what arrived and which Authorization header came with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO = r"(?P<repo>[^/]+/[^/]+)"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat().replace("+00:00", ".000Z")


def git_blob_sha(data: bytes) -> str:
    """The oid the Hub reports for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    refs: dict[str, Commit] = field(default_factory=dict)

    def head(self, revision: str) -> Commit | None:
        if revision in self.refs:
            return self.refs[revision]
        return next((c for c in self.refs.values() if c.oid == revision), None)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class HubStandin:
    """In-memory Hub. Use ``start()`` / ``stop()`` (or a ``with`` block); the server dies after ``lifetime``."""

    def __init__(self, *, token: str = "hf_standinTokenForTests0123456789", user: str = "tester") -> None:
        self.token = token
        self.user = user
        self.fail_with: int | None = None  # 401: every token rejected; 403: writes refused
        self.token_role = "write"
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "stand-in not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, lifetime: float = 120.0) -> str:
        """Serve on a free loopback port; returns the endpoint URL."""
        standin = self

        class Handler(_Handler):
            hub = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._watchdog = threading.Timer(lifetime, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self.endpoint

    def stop(self) -> None:
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- test helpers

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, private: bool = False) -> Repo:
        """A repo that exists before the test acts (e.g. holding another model)."""
        with self.lock:
            repo = Repo(repo_id, private=private)
            self.repos[repo_id] = repo
            self._commit(repo, "main", "initial", dict(files))
            return repo

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].head(revision)
        return dict(commit.files) if commit else {}

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ---------------------------------------------------------------- state changes (lock held)

    def _commit(self, repo: Repo, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = repo.refs.get(branch)
        digest = hashlib.sha1((parent.oid if parent else "").encode() + message.encode())
        for path in sorted(files):
            digest.update(path.encode() + git_blob_sha(files[path]).encode())
        digest.update(str(time.monotonic_ns()).encode())
        commit = Commit(digest.hexdigest(), message, files)
        repo.refs[branch] = commit
        return commit


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the stand-in; JSON in, JSON out, Hub-style error headers."""

    hub: HubStandin
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections from the client's pool end instead of pinning a thread

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # ---------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        extra = {"X-Error-Message": message, **(headers or {})}
        if code:
            extra["X-Error-Code"] = code
        self._json(status, {"error": message}, extra)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self._body()
        record = Recorded(
            self.command, path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}, body
        )
        self.hub.requests.append(record)
        for method, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, url.path)  # raw path: quoted revisions may contain "/"
            if match and method == self.command:
                groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    handler(self, record, **groups)
                except Exception as e:  # a stand-in bug must answer, not hang the client
                    self._error(500, f"stand-in error: {type(e).__name__}: {e}")
                return
        self._error(404, f"stand-in has no route {self.command} {path}")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _dispatch

    # ---------------------------------------------------------------- auth

    def _auth(self, record: Recorded) -> bool | None:
        """True = valid token, False = no token, None = rejected (answer already sent)."""
        header = record.authorization or ""
        if not header:
            return False
        if self.hub.fail_with == 401 or header != f"Bearer {self.hub.token}":
            self._error(401, "Invalid credentials in Authorization header")
            return None
        return True

    def _writable(self, record: Recorded, repo_id: str) -> bool:
        auth = self._auth(record)
        if auth is None:
            return False
        if auth is False:
            self._error(401, "You must be authenticated to write", headers={"WWW-Authenticate": "Bearer"})
            return False
        if self.hub.fail_with == 403 or self.hub.token_role == "read":
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return False
        return True

    def _readable_repo(self, record: Recorded, repo_id: str) -> Repo | None:
        auth = self._auth(record)
        if auth is None:
            return None
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not auth):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit | None:
        commit = repo.head(revision)
        if commit is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


# -------------------------------------------------------------------------------------- routes


def whoami(h: _Handler, record: Recorded) -> None:
    auth = h._auth(record)
    if auth is None:
        return
    if auth is False:
        h._error(401, "Invalid username or password.")
        return
    h._json(
        200,
        {
            "type": "user",
            "name": h.hub.user,
            "fullname": "Test User",
            "orgs": [],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "tests", "role": h.hub.token_role},
            },
        },
    )


def validate_yaml(h: _Handler, record: Recorded) -> None:
    """Parse the card's front matter and check model-index the way the Hub would reject it."""
    content = json.loads(record.body or b"{}").get("content", "")
    match = re.match(r"^---\n(.*?)\n---", content, re.S)
    errors: list[dict[str, str]] = []
    if match:
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as e:
            meta, errors = {}, [{"message": f"invalid YAML: {e}"}]
        for entry in meta.get("model-index") or [] if isinstance(meta, dict) else []:
            for result in entry.get("results", []):
                if not result.get("task", {}).get("type") or not result.get("dataset", {}).get("type"):
                    errors.append({"message": "model-index result needs task.type and dataset.type"})
                for metric in result.get("metrics", []):
                    if "type" not in metric or not isinstance(metric.get("value"), (int, float)):
                        errors.append({"message": f"bad model-index metric {metric}"})
    h._json(400 if errors else 200, {"errors": errors, "warnings": []})


def create_repo(h: _Handler, record: Recorded) -> None:
    payload = json.loads(record.body or b"{}")
    repo_id = f"{payload.get('organization') or h.hub.user}/{payload['name']}"
    if not h._writable(record, repo_id):
        return
    url = f"{h.hub.endpoint}/{repo_id}"
    with h.hub.lock:
        if repo_id in h.hub.repos:
            h._json(409, {"error": "You already created this model repo", "url": url})
            return
        repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        h.hub.repos[repo_id] = repo
        h.hub._commit(repo, "main", "initial commit", {".gitattributes": b"*.safetensors filter=lfs\n"})
    h._json(200, {"url": url, "name": repo_id, "id": repo_id})


def create_branch(h: _Handler, record: Recorded, repo: str, branch: str) -> None:
    found = h._readable_repo(record, repo)
    if found is None or not h._writable(record, repo):
        return
    with h.hub.lock:
        if branch in found.refs:
            h._error(409, f"Branch {branch} already exists")
            return
        start = json.loads(record.body or b"{}").get("startingPoint") or "main"
        found.refs[branch] = found.head(start) or found.refs["main"]
    h._json(200, {})


def model_info(h: _Handler, record: Recorded, repo: str, revision: str = "main") -> None:
    found = h._readable_repo(record, repo)
    if found is None or (commit := h._revision(found, revision)) is None:
        return
    siblings = [
        {"rfilename": p, "size": len(d), "blobId": git_blob_sha(d)} for p, d in sorted(commit.files.items())
    ]
    data = {
        "id": repo,
        "modelId": repo,
        "author": repo.split("/")[0],
        "sha": commit.oid,
        "private": found.private,
        "lastModified": NOW,
        "createdAt": NOW,
        "tags": [],
        "siblings": siblings,
    }
    h._json(200, data)


def tree(h: _Handler, record: Recorded, repo: str, revision: str, sub: str | None = None) -> None:
    found = h._readable_repo(record, repo)
    if found is None or (commit := h._revision(found, revision)) is None:
        return
    recursive = record.query.get("recursive", ["false"])[0].lower() in ("1", "true")
    prefix = f"{sub.strip('/')}/" if sub else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, data in sorted(commit.files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            folder = prefix + "/".join(rest[:depth])
            entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
            if not recursive:
                break
        if recursive or len(rest) == 1:
            entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}
    h._json(200, list(entries.values()))


def preupload(h: _Handler, record: Recorded, repo: str, revision: str) -> None:
    found = h._readable_repo(record, repo)
    if found is None or not h._writable(record, repo):
        return
    commit = found.head(revision)
    existing = commit.files if commit else {}
    files = [
        {
            "path": f["path"],
            "uploadMode": "regular",
            "shouldIgnore": False,
            "oid": git_blob_sha(existing[f["path"]]) if f["path"] in existing else None,
        }
        for f in json.loads(record.body).get("files", [])
    ]
    h._json(200, {"files": files, "commitOid": commit.oid if commit else None})


def commit(h: _Handler, record: Recorded, repo: str, revision: str) -> None:
    found = h._readable_repo(record, repo)
    if found is None or not h._writable(record, repo):
        return
    lines = [json.loads(line) for line in record.body.splitlines() if line.strip()]
    with h.hub.lock:
        head = found.head(revision)
        if head is None:
            h._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return
        files = dict(head.files)
        message = "commit"
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary") or message
                parent = value.get("parentCommit")
                if parent and parent != head.oid:
                    h._error(412, "A commit has happened since the parent commit")
                    return
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(prefix)}
            else:
                h._error(400, f"stand-in only accepts regular files, got {key}")
                return
        new = h.hub._commit(found, revision, message, files)
    h._json(
        200, {"success": True, "commitOid": new.oid, "commitUrl": f"{h.hub.endpoint}/{repo}/commit/{new.oid}"}
    )


def resolve(h: _Handler, record: Recorded, repo: str, revision: str, filename: str) -> None:
    found = h._readable_repo(record, repo)
    if found is None or (commit := h._revision(found, revision)) is None:
        return
    data = commit.files.get(filename)
    if data is None:
        h._error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        return
    etag = git_blob_sha(data)
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
    start = _range_start(record.headers.get("range"))
    if start:
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        h._send(206, data[start:], headers)
    else:
        h._send(200, data, headers)


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else 0


ROUTES = [
    ("GET", r"/api/whoami-v2", whoami),
    ("POST", r"/api/validate-yaml", validate_yaml),
    ("POST", r"/api/repos/create", create_repo),
    ("POST", rf"/api/models/{REPO}/branch/(?P<branch>[^/]+)", create_branch),
    ("GET", rf"/api/models/{REPO}", model_info),
    ("GET", rf"/api/models/{REPO}/revision/(?P<revision>[^/]+)", model_info),
    ("GET", rf"/api/models/{REPO}/tree/(?P<revision>[^/]+)(?:/(?P<sub>.+))?", tree),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<revision>[^/]+)", preupload),
    ("POST", rf"/api/models/{REPO}/commit/(?P<revision>[^/]+)", commit),
    ("HEAD", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", resolve),
    ("GET", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", resolve),
]


# ------------------------------------------------------------------------------- fake exports


def make_output_dir(
    root: Path | str,
    *,
    task: str = "classification",
    method: str = "lora",
    is_peft: bool = True,
    base_model_hub_id: str | None = "sentence-transformers/all-MiniLM-L6-v2",
    dataset: str | None = "rotten_tomatoes",
    with_clutter: bool = True,
) -> Path:
    """A directory shaped like a training run's export (tiny fake weights), plus the clutter runs leave."""
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    labels = ["rotten", "fresh"] if task == "classification" else None
    meta = {
        "format_version": 1,
        "task": task,
        "method": method,
        "is_peft": is_peft,
        "base_model": "minilm" if task == "classification" else "smollm2-135m",
        "base_model_hub_id": base_model_hub_id,
        "labels": labels,
        "dataset": dataset,
        "trainable_params": 74_498 if is_peft else 22_713_602,
        "total_params": 22_788_866 if is_peft else 22_713_602,
        "library_versions": {"torch": "2.13.0", "transformers": "5.23.0", "peft": "0.21.2"},
        "hardware": "CPU, 2 threads",
        "created": "2026-11-22T10:00:00+00:00",
    }
    if task == "classification":
        test = {
            "accuracy": 0.8113,
            "macro_f1": 0.8071,
            "per_class": {
                "rotten": {"precision": 0.79, "recall": 0.74, "f1": 0.764, "support": 528},
                "fresh": {"precision": 0.826, "recall": 0.862, "f1": 0.844, "support": 748},
            },
            "confusion_matrix": [[391, 137], [103, 645]],
            "eval_latency_ms_per_example": 3.4,
        }
        validation = {"accuracy": 0.8201, "macro_f1": 0.8155}
    else:
        test = {
            "rouge1": 0.286,
            "rouge2": 0.092,
            "rougeL": 0.226,
            "n_examples": 23,
            "zero_shot": {"rouge1": 0.256, "rouge2": 0.047, "rougeL": 0.188},
        }
        validation = {"rouge1": 0.27, "rougeL": 0.21}
    metrics = {
        "test": test,
        "validation": validation,
        "train": {"train_time_s": 444.2, "samples_per_s": 0.59, "steps": 54, "epochs": 3},
        "peak_memory_mb": 9700.0,
    }
    (out / "nlp_transfer.json").write_text(json.dumps(meta, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "run_config.yaml").write_text(
        yaml.safe_dump({"model": meta["base_model"], "method": method, "lr": 0.0005, "epochs": 3, "seed": 13})
    )
    if is_peft:
        task_type = "SEQ_CLS" if task == "classification" else "CAUSAL_LM"
        (out / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "task_type": task_type, "r": 8})
        )
        (out / "adapter_model.safetensors").write_bytes(hashlib.sha256(b"adapter").digest() * 64)
    else:
        arch = "BertForSequenceClassification" if task == "classification" else "LlamaForCausalLM"
        (out / "config.json").write_text(json.dumps({"architectures": [arch]}))
        (out / "model.safetensors").write_bytes(hashlib.sha256(b"model").digest() * 128)
    (out / "tokenizer.json").write_text('{"version": "1.0"}')
    (out / "tokenizer_config.json").write_text('{"model_max_length": 512}')
    (out / "special_tokens_map.json").write_text('{"cls_token": "[CLS]"}')
    if with_clutter:
        for rel in ("checkpoints/step-100/optimizer.pt", "checkpoints/step-100/adapter_model.safetensors"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(b"checkpoint " + rel.encode())
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / "events.out.tfevents.1.host").write_bytes(b"tensorboard")
        for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "notes.txt"):
            (out / name).write_bytes(b"not for the hub")
    return out
