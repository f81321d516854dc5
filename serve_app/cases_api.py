"""HTTP routes for analysts: case lists and workflow, labels, quality metrics, summaries."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fraudline.errors import InvalidInput, NotFound, StoreUnavailable
from fraudline.records import CasePage, CaseRecord, CaseStatus, QualityReport

logger = logging.getLogger(__name__)


class RemoteMethod(Protocol):
    """A method called as `method.remote(*args, **kwargs)`, returning an awaitable."""

    def remote(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


class Handle(Protocol):
    """What the routes call: a Ray Serve DeploymentHandle, or a `LocalHandle`.

    Every public method of the wrapped class is reached as
    `await handle.<method>.remote(...)`.
    """

    def __getattr__(self, name: str) -> RemoteMethod: ...


class _LocalMethod:
    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        # A worker thread, as a replica would be: the event loop never waits on the database.
        return asyncio.to_thread(functools.partial(self._method, *args, **kwargs))


class LocalHandle:
    """Makes a plain object look like a deployment handle, for tests and Ray-free runs.

    Args:
        target: The object whose methods `handle.<method>.remote(...)` calls.
    """

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> _LocalMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _LocalMethod(getattr(self._target, name))


Actor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who makes the change, as the audit trail should name them.",
    ),
]


class CaseUpdate(BaseModel):
    """A change of status and/or assignee; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = Field(
        default=None,
        description="open -> investigating -> confirmed_fraud | false_positive -> closed.",
    )
    assignee: str | None = Field(
        default=None, max_length=100, description='Analyst to assign; "" unassigns.'
    )
    actor: Actor


class NoteIn(BaseModel):
    """A note to add to a case."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000)
    actor: Actor


class TagsIn(BaseModel):
    """Tags to add to a case."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(min_length=1, max_length=20)
    actor: Actor


class LabelIn(BaseModel):
    """An analyst's verdict on a case."""

    model_config = ConfigDict(extra="forbid")

    label: Literal["fraud", "legitimate"] = Field(
        description="fraud confirms the flag; legitimate marks it a false positive."
    )
    actor: Actor


async def _call(method: RemoteMethod, *args: Any, **kwargs: Any) -> Any:
    """Calls a deployment method and turns the project's errors into HTTP answers."""
    try:
        return await method.remote(*args, **kwargs)
    except NotFound as error:
        raise HTTPException(status_code=404, detail=_message(error)) from None
    except InvalidInput as error:
        raise HTTPException(status_code=422, detail=_message(error)) from None
    except StoreUnavailable as error:
        raise HTTPException(
            status_code=503,
            detail=f"store unavailable: {_message(error)}",
            headers={"Retry-After": "1"},
        ) from None


def _message(error: Exception) -> str:
    # A remote call re-raises the deployment's error wrapped with its traceback;
    # the client gets only the original message.
    cause = getattr(error, "cause", None)
    return str(cause if isinstance(cause, Exception) else error)


def build_cases_router(logger_handle: Handle, reports_handle: Handle) -> APIRouter:
    """Routes over the FraudLogger and ReportGenerator deployments.

    Args:
        logger_handle: Handle of the FraudLogger deployment (or a `LocalHandle`).
        reports_handle: Handle of the ReportGenerator deployment (or a `LocalHandle`).
    """
    router = APIRouter()

    @router.get("/v1/cases", response_model=CasePage, tags=["cases"])
    async def list_cases(
        status: CaseStatus | None = None,
        decision: Literal["review", "block"] | None = None,
        min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
        max_score: Annotated[float | None, Query(ge=0, le=100)] = None,
        since: Annotated[AwareDatetime | None, Query(description="Created at or after.")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Created before.")] = None,
        assignee: Annotated[str | None, Query(max_length=100)] = None,
        tag: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> CasePage:
        """Cases newest first, filtered; `total` counts every match, not just this page."""
        return await _call(
            logger_handle.list_cases,
            status=status,
            decision=decision,
            min_score=min_score,
            max_score=max_score,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            assignee=assignee,
            tag=tag,
        )

    @router.get("/v1/cases/{case_id}", response_model=CaseRecord, tags=["cases"])
    async def get_case(case_id: str) -> CaseRecord:
        """One case with its evidence, timeline, notes, tags, alert and report."""
        return await _call(logger_handle.get_case, case_id)

    @router.patch("/v1/cases/{case_id}", response_model=CaseRecord, tags=["cases"])
    async def update_case(case_id: str, body: CaseUpdate) -> CaseRecord:
        """Moves a case along its workflow and/or assigns it; 422 names allowed moves."""
        return await _call(
            logger_handle.update_case,
            case_id,
            status=body.status,
            assignee=body.assignee,
            actor=body.actor,
        )

    @router.post(
        "/v1/cases/{case_id}/notes", response_model=CaseRecord, status_code=201, tags=["cases"]
    )
    async def add_note(case_id: str, body: NoteIn) -> CaseRecord:
        """Adds a note; the case comes back with all its notes."""
        return await _call(logger_handle.add_note, case_id, body.text, actor=body.actor)

    @router.post("/v1/cases/{case_id}/tags", response_model=CaseRecord, tags=["cases"])
    async def add_tags(case_id: str, body: TagsIn) -> CaseRecord:
        """Adds tags (lower-cased); tags the case already has are skipped."""
        return await _call(logger_handle.add_tags, case_id, body.tags, actor=body.actor)

    @router.post("/v1/cases/{case_id}/label", response_model=CaseRecord, tags=["cases"])
    async def label_case(case_id: str, body: LabelIn) -> CaseRecord:
        """Labels a case fraud (confirmed_fraud) or legitimate (false_positive)."""
        return await _call(logger_handle.label_case, case_id, body.label, actor=body.actor)

    @router.get("/v1/metrics/quality", response_model=QualityReport, tags=["metrics"])
    async def quality() -> QualityReport:
        """Per policy version: precision of blocks and reviews, false-positive rate,
        among labelled cases."""
        return await _call(logger_handle.quality_metrics)

    @router.get("/v1/reports/summary", tags=["reports"])
    async def period_summary(
        since: Annotated[AwareDatetime, Query(description="Start, inclusive, with offset.")],
        until: Annotated[AwareDatetime, Query(description="End, exclusive, with offset.")],
        format: Literal["json", "html"] = "json",
    ) -> Response:
        """Decisions of a period: counts, rates, top reasons, latency percentiles."""
        body, media_type = await _call(reports_handle.render_period_summary, since, until, format)
        return Response(content=body, media_type=media_type)

    return router
