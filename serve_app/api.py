"""The public HTTP API, as a FastAPI app built inside the ingress replica."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import OperationalError

from fraudline.errors import InvalidInput, NotFound, StoreUnavailable
from fraudline.schemas import DecisionResult, Transaction

logger = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 1000


class Records(Protocol):
    """Read access to cases, reports and the audit chain."""

    async def case(self, case_id: str) -> dict[str, Any]: ...

    async def report(self, report_id: str, fmt: str) -> tuple[bytes, str]: ...

    async def verify_audit(self) -> dict[str, Any]: ...


class BatchItemError(BaseModel):
    index: int
    transaction_id: str | None = None
    errors: list[dict[str, Any]]


class BatchResponse(BaseModel):
    results: list[DecisionResult | BatchItemError]
    decided: int
    rejected: int


class BatchRequest(BaseModel):
    transactions: list[dict[str, Any]] = Field(max_length=MAX_BATCH_ITEMS)
    explain: bool = Field(
        default=False,
        description="Also ask the model about grey-zone items (slow); off for bulk scoring.",
    )


class Question(BaseModel):
    question: str = Field(min_length=1, max_length=1000)


class Answer(BaseModel):
    case_id: str
    answer: str
    model: str | None = None


def create_api(
    decide: Callable[[Transaction], Awaitable[DecisionResult]],
    decide_many: Callable[[list[Transaction], bool], Awaitable[list[DecisionResult]]],
    records: Records,
    health: Callable[[], dict[str, Any]],
    *,
    stream: Callable[[Transaction], AsyncIterator[dict[str, Any]]] | None = None,
    ask: Callable[[dict[str, Any], str], Awaitable[str | None]] | None = None,
    model_id: str | None = None,
    chat: Callable[[dict[str, Any]], Awaitable[Response]] | None = None,
    lifespan: Any = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Builds the API around the agent's entry points and the records.

    `stream`, `ask` and `chat` are there when a model is configured; the
    routes that need them answer 503 otherwise.
    """
    api = FastAPI(
        title="Fraudline",
        version="0.1.0",
        description="Real-time payment-fraud decisions with evidence and explanations.",
        lifespan=lifespan,
    )
    # Included first: their fixed paths (e.g. /v1/reports/summary) must win over
    # the path parameters below.
    for router in routers:
        api.include_router(router)

    @api.exception_handler(NotFound)
    async def _not_found(_request: Request, error: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @api.exception_handler(InvalidInput)
    async def _invalid(_request: Request, error: InvalidInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @api.exception_handler(RequestValidationError)
    async def _unprocessable(_request: Request, error: RequestValidationError) -> JSONResponse:
        # The rejected input is not echoed back: it may hold a card number, or
        # values (NaN, lone surrogates) that cannot be written as JSON.
        return JSONResponse(
            status_code=422,
            content={"detail": [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in error.errors()
            ]},
        )

    @api.exception_handler(OperationalError)
    async def _database_down(_request: Request, _error: OperationalError) -> JSONResponse:
        logger.warning("database unavailable")
        return JSONResponse(
            status_code=503,
            content={"detail": "store unavailable; try again shortly"},
            headers={"Retry-After": "1"},
        )

    @api.exception_handler(StoreUnavailable)
    async def _store_down(_request: Request, error: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"store unavailable: {error}"},
            headers={"Retry-After": "1"},
        )

    @api.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness and what this replica is wired to."""
        return health()

    @api.post("/v1/analyze", response_model=DecisionResult)
    async def analyze(transaction: Transaction) -> Response:
        """Decides on one transaction: approve, review or block, with the evidence."""
        return _json(await decide(transaction))

    @api.post("/v1/analyze/batch", response_model=BatchResponse)
    async def analyze_batch(body: BatchRequest) -> Response:
        """Decides up to 1,000 transactions; a bad item fails alone, results keep order."""
        valid: list[tuple[int, Transaction]] = []
        results: list[DecisionResult | BatchItemError | None] = [None] * len(body.transactions)
        for index, raw in enumerate(body.transactions):
            try:
                valid.append((index, Transaction.model_validate(raw)))
            except ValidationError as error:
                results[index] = BatchItemError(
                    index=index,
                    transaction_id=str(raw.get("transaction_id"))[:64]
                    if isinstance(raw, dict) and raw.get("transaction_id") else None,
                    errors=[
                        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                        for e in error.errors(include_url=False, include_input=False)
                    ],
                )
        decided = await decide_many([tx for _, tx in valid], body.explain) if valid else []
        for (index, _), result in zip(valid, decided):
            results[index] = result
        return _json(BatchResponse(
            results=[r for r in results if r is not None],
            decided=len(valid),
            rejected=len(body.transactions) - len(valid),
        ))

    @api.post("/v1/analyze/stream")
    async def analyze_stream(transaction: Transaction) -> StreamingResponse:
        """Decides on one transaction as server-sent events: each tool call and
        result, the model's reasoning and answer as they are written, the decision."""
        if stream is None:
            raise HTTPException(status_code=503, detail="streaming is not configured")

        async def events() -> AsyncIterator[str]:
            async for event in stream(transaction):
                name = event.pop("event")
                yield f"event: {name}\ndata: {json.dumps(event, default=str)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/v1/cases/{case_id}/ask", response_model=Answer)
    async def ask_about_case(case_id: str, body: Question) -> Answer:
        """An analyst's question about a case, answered by the model from its evidence."""
        case = await records.case(case_id)
        if ask is None:
            raise HTTPException(status_code=503, detail="no reasoning model is configured")
        answer = await ask(case, body.question)
        if answer is None:
            raise HTTPException(
                status_code=503, detail="the model gave no answer; try again",
                headers={"Retry-After": "5"},
            )
        return Answer(case_id=case_id, answer=answer, model=model_id)

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """The model's OpenAI-compatible chat endpoint, for clients that want it."""
        if chat is None:
            raise HTTPException(status_code=503, detail="no model is configured")
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(status_code=400, detail="the body must be JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(status_code=422, detail="the body must be a JSON object")
        return await chat(body)

    @api.get("/v1/cases/{case_id}")
    async def get_case(case_id: str) -> dict[str, Any]:
        """One case with its stored decision, evidence and timeline."""
        # The cases router's route comes first and answers when it is included;
        # this one serves apps built without it.
        return await records.case(case_id)

    @api.get("/v1/reports/{report_id}")
    async def get_report(
        report_id: str, format: Literal["json", "html", "pdf"] = Query("json")
    ) -> Response:
        """A case's compliance report as JSON, HTML or PDF."""
        body, media_type = await records.report(report_id, format)
        return Response(content=body, media_type=media_type)

    @api.get("/v1/audit/verify")
    async def verify_audit() -> dict[str, Any]:
        """Walks the audit hash chain and names the first bad entry, if any."""
        return await records.verify_audit()

    return api


def _json(model: BaseModel) -> Response:
    # Serialized once, here: returned as a model, FastAPI would validate it again
    # against `response_model` first: about 50 ms of a 500-item batch.
    return Response(model.model_dump_json(), media_type="application/json")
