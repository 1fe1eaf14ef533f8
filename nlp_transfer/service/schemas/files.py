"""Request/response models of /v1/files."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class FileObject(BaseModel):
    id: str
    object: str = "file"
    filename: str
    bytes: int
    task: str
    rows: int
    columns: dict[str, str]
    created_at: datetime
