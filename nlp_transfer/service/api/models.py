"""Registry endpoints: list, read and delete models; move aliases and read their history.

    GET    /v1/models                  page of live models, newest first (?limit, ?after, ?task)
    GET    /v1/models/{id}             base, method, task, metrics, card, aliases
    DELETE /v1/models/{id}             409 while an alias points at it; a user's --adapters files stay
    GET    /v1/aliases                 every alias and its model
    GET    /v1/aliases/{name}          one alias
    PUT    /v1/aliases/{name}          {"model_id": ...}: create or move, atomically, with history
    DELETE /v1/aliases/{name}          remove (recorded in the history)
    GET    /v1/aliases/{name}/history  every move, newest first

The rules live in registry/store.py; this module maps its errors to status codes (404 unknown,
409 in use, 422 bad alias name, 503 lost too many races) with the store's one-line message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from nlp_transfer.service.deps import get_session, get_settings
from nlp_transfer.service.registry import store
from nlp_transfer.service.registry.orm import Alias, AliasHistory, RegisteredModel
from nlp_transfer.service.schemas.models import (
    AliasHistoryEntry,
    AliasHistoryList,
    AliasList,
    AliasMove,
    AliasOut,
    ModelDeleted,
    ModelDetail,
    ModelList,
    ModelSummary,
)
from nlp_transfer.service.settings import ServiceSettings

router = APIRouter(prefix="/v1", tags=["models"])
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]

_STATUS: list[tuple[type[Exception], int]] = [
    (store.ModelNotFound, 404),
    (store.AliasNotFound, 404),
    (store.BadAliasName, 422),
    (store.ModelInUse, 409),
    (store.RegistryBusy, 503),
]


def _http(error: store.RegistryError) -> HTTPException:
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
    return HTTPException(status_code=status, detail=str(error))


def _primary_value(model: RegisteredModel) -> float | None:
    test = (model.metrics or {}).get("test")
    value = test.get(model.primary_metric) if isinstance(test, dict) and model.primary_metric else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _summary_fields(model: RegisteredModel, aliases: list[str]) -> dict[str, Any]:
    return dict(
        id=model.id, name=model.name, task=model.task, method=model.method, base_model=model.base_model,
        source=model.source, job_id=model.job_id, primary_metric=model.primary_metric,
        primary_metric_value=_primary_value(model), aliases=aliases, created_at=model.created_at,
    )  # fmt: skip


def _alias_out(alias: Alias) -> AliasOut:
    return AliasOut(name=alias.name, model_id=alias.model_id, updated_at=alias.updated_at)


def _history_out(entry: AliasHistory) -> AliasHistoryEntry:
    return AliasHistoryEntry(
        alias=entry.alias,
        model_id=entry.model_id,
        previous_model_id=entry.previous_model_id,
        moved_at=entry.moved_at,
    )


@router.get("/models", response_model=ModelList)
def list_models(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="id of the last model of the previous page")] = None,
    task: Annotated[str | None, Query(description="only models of this task")] = None,
) -> ModelList:
    try:
        rows, has_more = store.list_models(session, limit=limit, after=after, task=task)
    except store.RegistryError as e:
        raise _http(e) from e
    held: dict[str, list[str]] = {}
    for alias in store.list_aliases(session):
        held.setdefault(alias.model_id, []).append(alias.name)
    return ModelList(
        data=[ModelSummary(**_summary_fields(m, held.get(m.id, []))) for m in rows], has_more=has_more
    )


@router.get("/models/{model_id}", response_model=ModelDetail)
def get_model(model_id: str, session: SessionDep) -> ModelDetail:
    try:
        model = store.get_model(session, model_id)
    except store.RegistryError as e:
        raise _http(e) from e
    return ModelDetail(
        **_summary_fields(model, store.aliases_of(session, model.id)),
        run_dir=model.run_dir,
        metrics=model.metrics or {},
        card=model.card or "",
    )


@router.delete("/models/{model_id}", response_model=ModelDeleted)
def delete_model(
    model_id: str,
    session: SessionDep,
    settings: SettingsDep,
) -> ModelDeleted:
    try:
        removed = store.delete_model(
            session, model_id, state_dir=settings.state_dir, adapters=settings.adapters
        )
    except store.RegistryError as e:
        raise _http(e) from e
    return ModelDeleted(id=model_id, files_removed=str(removed) if removed else None)


@router.get("/aliases", response_model=AliasList)
def list_aliases(session: SessionDep) -> AliasList:
    return AliasList(data=[_alias_out(a) for a in store.list_aliases(session)])


@router.get("/aliases/{name}", response_model=AliasOut)
def get_alias(name: str, session: SessionDep) -> AliasOut:
    try:
        return _alias_out(store.get_alias(session, name))
    except store.RegistryError as e:
        raise _http(e) from e


@router.put("/aliases/{name}", response_model=AliasOut)
def move_alias(name: str, body: AliasMove, session: SessionDep) -> AliasOut:
    try:
        return _alias_out(store.move_alias(session, name, body.model_id))
    except store.RegistryError as e:
        raise _http(e) from e


@router.delete("/aliases/{name}", status_code=204)
def remove_alias(name: str, session: SessionDep) -> None:
    try:
        store.remove_alias(session, name)
    except store.RegistryError as e:
        raise _http(e) from e


@router.get("/aliases/{name}/history", response_model=AliasHistoryList)
def alias_history(
    name: str, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> AliasHistoryList:
    try:
        return AliasHistoryList(
            data=[_history_out(h) for h in store.alias_history(session, name, limit=limit)]
        )
    except store.RegistryError as e:
        raise _http(e) from e
