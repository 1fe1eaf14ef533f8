"""POST /v1/files: upload a CSV/TSV/JSONL/Parquet dataset, checked like a recipe would check it.

The upload is copied in chunks to a staging file while counting bytes (413 past the limit), then
loaded and validated for its task (422 with the data validator's line); only a valid file is moved
into place and recorded, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from nlp_transfer.service.deps import SessionDep, SettingsDep
from nlp_transfer.service.jobs import orm
from nlp_transfer.service.jobs.store import new_id
from nlp_transfer.service.jobs.validation import Rejected, validate_file
from nlp_transfer.service.schemas.files import FileObject

router = APIRouter(prefix="/v1/files", tags=["files"])
CHUNK = 1 << 20


def safe_name(name: str | None) -> str:
    """A plain file name: no directories, no dot-files, only [A-Za-z0-9._-]."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or "upload").name).lstrip(".")
    return base[:200] or "upload"


def _object(row: orm.File) -> FileObject:
    return FileObject(id=row.id, filename=row.filename, bytes=row.bytes, task=row.task, rows=row.rows,
                      columns=row.columns, created_at=row.created_at)  # fmt: skip


@router.post("", status_code=201, response_model=FileObject)
def upload(
    file: Annotated[UploadFile, File()],
    settings: SettingsDep,
    session: SessionDep,
    task: str = Form("classification"),
    text_column: str = Form("text"),
    label_column: str = Form("label"),
    summary_column: str = Form("summary"),
) -> FileObject:
    limit = int(settings.max_upload_mb * 2**20)
    file_id, name = new_id("file"), safe_name(file.filename)
    staging = settings.files_dir / ".incoming" / file_id
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / name
    try:
        size = 0
        with target.open("wb") as out:
            while chunk := file.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, f"{name} is larger than the upload limit of {settings.max_upload_mb:g} MB"
                    )
                out.write(chunk)
        columns = {"text_column": text_column, "label_column": label_column, "summary_column": summary_column}
        try:
            rows, checked = validate_file(target, task, columns)
        except Rejected as e:
            raise HTTPException(e.status, e.message) from e
        final_dir = settings.files_dir / file_id
        final_dir.mkdir(parents=True)
        final = final_dir / name
        target.rename(final)
        row = orm.File(id=file_id, filename=name, path=str(final), bytes=size, task=task, rows=rows,
                       columns=checked, created_at=orm.utcnow())  # fmt: skip
        session.add(row)
        try:
            session.commit()
        except Exception:
            shutil.rmtree(final_dir, ignore_errors=True)
            raise
        return _object(row)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@router.get("/{file_id}", response_model=FileObject)
def get_file(file_id: str, session: SessionDep) -> FileObject:
    row = session.get(orm.File, file_id)
    if row is None:
        raise HTTPException(404, f"no file {file_id!r}")
    return _object(row)
