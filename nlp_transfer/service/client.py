"""A thin HTTP client of the service API (httpx): what `nlp-transfer jobs ...` and scripts call.

Why thin: the server validates everything (config keys, values, datasets) and its one-line error
message is the one a user should see, so the client sends what it is given and turns any non-2xx
answer into one `APIError` line carrying the server's message and status; it never re-implements
a rule the API already enforces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from nlp_transfer.errors import NLPTransferError

DEFAULT_SERVER = "http://127.0.0.1:8000"
SERVER_ENV = "NLP_TRANSFER_SERVER"
API_KEY_ENV = (
    "NLP_TRANSFER_API_KEY"  # the same variable `nlp-transfer serve` reads (ServiceSettings.api_key_env)
)


class APIError(NLPTransferError):
    """A request the server refused (its one-line message) or a server that could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def error_message(response: httpx.Response) -> str:
    """The API's one-line message from an error body, whatever shape it has."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip().splitlines() or [response.reason_phrase])[0][:500]
    detail: Any = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("detail") or json.dumps(detail)
    if isinstance(detail, list):  # FastAPI's own validation errors: [{"loc": [...], "msg": ...}]
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail).strip().splitlines()[0] if str(detail).strip() else response.reason_phrase


class Client:
    """One server: `Client("http://127.0.0.1:8000")`; the API key defaults to $NLP_TRANSFER_API_KEY."""

    def __init__(self, server: str | None = None, api_key: str | None = None, timeout: float = 300.0) -> None:
        self.server = (server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; any error becomes an APIError with the server's one-line message."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as e:  # creating a job validates its data first: it can take a while
            raise APIError(
                f"the service at {self.server} did not answer {method} {path} in time ({type(e).__name__}); "
                "a job may still have been created: list the jobs, or retry with the same --idempotency-key"
            ) from e
        except httpx.TransportError as e:
            raise APIError(
                f"cannot reach the service at {self.server} ({type(e).__name__}: {e}); is `nlp-transfer serve` running?"
            ) from e
        if response.status_code >= 400:
            raise APIError(f"{response.status_code}: {error_message(response)}", response.status_code)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # --- files and jobs ---

    def upload_file(self, path: str | Path, **form: str) -> dict[str, Any]:
        """Upload a dataset; `form` may name its task and columns (task, text_column, label_column, ...)."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise APIError(f"training file {path} does not exist")
        with file.open("rb") as handle:
            return self._json("POST", "/v1/files", files={"file": (file.name, handle)}, data=form)

    def create_job(
        self,
        config: dict[str, Any],
        *,
        training_file: str | None = None,
        accelerate_config: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"config": config}
        if training_file:
            body["training_file"] = training_file
        if accelerate_config:
            body["accelerate_config"] = accelerate_config
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/fine_tuning/jobs", json=body, headers=headers)

    def list_jobs(self, *, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        return self._json("GET", "/v1/fine_tuning/jobs", params=params)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/fine_tuning/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel")

    def resume_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/fine_tuning/jobs/{job_id}/resume")

    def events(self, job_id: str) -> Any:
        return self._json("GET", f"/v1/fine_tuning/jobs/{job_id}/events")

    def stream_events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Server-sent events of a job until the server ends the stream (the job finished)."""
        path = f"/v1/fine_tuning/jobs/{job_id}/events"
        try:
            with self._http.stream("GET", path, params={"stream": "true"}, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise APIError(f"{response.status_code}: {error_message(response)}", response.status_code)
                yield from parse_sse(response.iter_lines())
        except httpx.TransportError as e:
            raise APIError(f"event stream from {self.server} broke off ({type(e).__name__}: {e})") from e

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        params = {"tail": tail} if tail else {}
        response = self.request("GET", f"/v1/fine_tuning/jobs/{job_id}/logs", params=params)
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("text"), str):
                return body["text"]
            return json.dumps(body, indent=2)
        return response.text

    # --- registry ---

    def list_models(self, *, limit: int = 50, after: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        return self._json("GET", "/v1/models", params=params)

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/models/{model_id}")

    def delete_model(self, model_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/models/{model_id}")

    def move_alias(self, name: str, model_id: str) -> dict[str, Any]:
        return self._json("PUT", f"/v1/aliases/{name}", json={"model_id": model_id})

    def alias_history(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/aliases/{name}/history")


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Events from SSE lines: `event:`/`data:` fields up to a blank line; data is JSON when it parses."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                if not isinstance(payload, dict):
                    payload = {"data": payload}
                if event and "type" not in payload:
                    payload = {"type": event, **payload}
                yield payload
            event, data = None, []
        elif line.startswith(":"):
            continue  # keep-alive comment
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
