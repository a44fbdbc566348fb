"""The test plan as a Prefect block (instead of a file): the plan document itself,
validated when it is saved and when it is loaded (docs/testing.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from blocks.base import StrictBlock
from scholar_ops.functest.config import TestPlan, parse_plan
from scholar_ops.functest.errors import PlanError


class FunctionalTestPlan(StrictBlock):
    """A functionality test plan: target, credentials by Secret block name, suites."""

    _block_type_name = "scholar-ops test plan"
    _description = (
        "What the functionality-tests and smoke-tests flows test: the target's URL, the "
        "Secret block of the test user, the data stores by target block name, and the suites."
    )
    kind: ClassVar[str] = "test plan"

    plan: dict[str, Any] = Field(description="The plan document (docs/testing.md).")

    @field_validator("plan")
    @classmethod
    def _valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_plan(value, "test plan block")
        except PlanError as e:
            raise ValueError(str(e)) from None
        return value

    def parsed(self) -> TestPlan:
        return parse_plan(self.plan, f"test plan block {self._block_document_name or ''}".strip())
