"""Everything a server instance is configured with, in one dataclass (flags of `nlp-transfer serve`).

Why a dataclass and not globals: the tests start several servers in one session (two sharing one
PostgreSQL, one killed and restarted), so every component gets its settings passed in.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from nlp_transfer.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REPO_ROOT = Path(__file__).resolve().parents[2]  # recipes/ and accelerate_configs/ live here


@dataclass
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    state_dir: Path = Path("service_state")
    database_url: str | None = None  # default: sqlite:///<state_dir>/service.db
    api_key_env: str = "NLP_TRANSFER_API_KEY"
    require_api_key: bool = False  # forced on by a non-local host; may be forced on for a local one
    adapters: list[str] = field(default_factory=list)
    max_concurrent_jobs: int = 1
    data_roots: list[str] = field(default_factory=list)  # + state_dir/files, always allowed
    max_upload_mb: float = 100.0
    cancel_grace_s: float = 30.0
    poll_interval_s: float = 0.5
    job_retention_days: float | None = None  # H8: finished job directories older than this are removed
    job_retention_keep: int | None = None  # keep only the N most recent finished job directories
    worker_id: str | None = None  # who claimed a job; default host name + state_dir
    recipes_dir: Path = REPO_ROOT / "recipes"
    accelerate_configs_dir: Path = REPO_ROOT / "accelerate_configs"
    default_accelerate_config: str = "cpu.yaml"
    run_executor: bool = True  # off: the API only (tests of validation and auth)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.state_dir / 'service.db'}"
        if self.worker_id is None:
            digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:8]
            self.worker_id = f"{socket.gethostname()}:{digest}"
        if self.max_concurrent_jobs < 1:
            raise ConfigError(f"max_concurrent_jobs must be at least 1, not {self.max_concurrent_jobs}")
        for name in ("job_retention_keep", "job_retention_days"):
            if (getattr(self, name) or 0) < 0:
                raise ConfigError(f"{name} must be 0 or more, not {getattr(self, name)}")

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def key_required(self) -> bool:
        return self.require_api_key or not self.is_local or self.api_key is not None

    def check_auth(self) -> None:
        """Refuse to start open to the network: any non-local bind needs the key."""
        if self.key_required and self.api_key is None:
            why = f"binding {self.host}" if not self.is_local else "--require-api-key"
            raise ConfigError(f"{why} needs an API key: set the environment variable {self.api_key_env}")

    @property
    def files_dir(self) -> Path:
        return self.state_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    def allowed_roots(self) -> list[Path]:
        return [self.files_dir.resolve(), *(Path(r).expanduser().resolve() for r in self.data_roots)]
