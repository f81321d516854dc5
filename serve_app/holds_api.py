"""HTTP routes for analysts: read, place, extend and release holds on customers' cards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from fraudline.records import HoldInfo
from serve_app.cases_api import Actor, Handle, _call

CustomerId = Annotated[str, Field(min_length=1, max_length=64)]


class HoldChange(BaseModel):
    """When a hold should end: `hours` from now, or at `until`; give exactly one."""

    model_config = ConfigDict(extra="forbid")

    hours: float | None = Field(
        default=None, gt=0, le=24 * 90, description="The hold ends this many hours from now."
    )
    until: AwareDatetime | None = Field(
        default=None, description="The hold ends at this moment (with its UTC offset)."
    )
    actor: Actor
    reason: str = Field(default="", max_length=500, description="Why, for the audit trail.")

    @model_validator(mode="after")
    def _one_end(self) -> HoldChange:
        if (self.hours is None) == (self.until is None):
            raise ValueError("give either hours or until, not both")
        return self


class HoldRelease(BaseModel):
    """The hold that was released, or none when the customer's card was not on hold."""

    released: bool
    hold: HoldInfo | None = None


def build_holds_router(logger_handle: Handle, *, dependencies: Sequence[Depends] = ()) -> APIRouter:
    """Routes over the FraudLogger deployment's holds.

    Args:
        logger_handle: Handle of the FraudLogger deployment (or a `LocalHandle`).
        dependencies: Run before every route, e.g. the analyst role check
            `Depends(authenticator.require("analyst"))`.
    """
    router = APIRouter(prefix="/v1/customers", tags=["holds"], dependencies=list(dependencies))

    @router.get("/{customer_id}/hold", response_model=HoldInfo)
    async def get_hold(customer_id: CustomerId) -> Any:
        """The customer's hold in force now; 404 when the card is not on hold."""
        return await _call(logger_handle.get_hold, customer_id)

    @router.post("/{customer_id}/hold", response_model=HoldInfo)
    async def change_hold(customer_id: CustomerId, body: HoldChange) -> Any:
        """Moves the end of the customer's hold, or places a hold when none runs.

        Every change is an audit entry and, for a hold a block placed, a step
        on that block's case timeline.
        """
        return await _call(
            logger_handle.extend_hold,
            customer_id,
            hours=body.hours,
            until=body.until,
            actor=body.actor,
            reason=body.reason,
        )

    @router.delete("/{customer_id}/hold", response_model=HoldRelease)
    async def release_hold(
        customer_id: CustomerId,
        actor: Annotated[
            str,
            Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"),
        ],
        reason: Annotated[str, Query(max_length=500)] = "",
    ) -> HoldRelease:
        """Releases the customer's hold now, so their next payment is decided normally."""
        hold = await _call(logger_handle.release_hold, customer_id, actor=actor, reason=reason)
        return HoldRelease(released=hold is not None, hold=hold)

    return router
