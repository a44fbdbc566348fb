"""What the e2e test does in the Prefect UI (Prefect 3's default UI), as an operator does it.

Selectors are the UI's own class names and texts (prefect-ui-library); when a Prefect
upgrade changes them, this module is the one place to update.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from playwright.sync_api import Locator, Page

#: the enclosing form field of a parameter's label in the custom run form
_PROPERTY = (
    "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '),"
    " ' schema-form-property ')][1]"
)
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass
class DeploymentRow:
    name: str
    schedules: list[str]  # the schedule tags' texts
    inactive: list[bool]  # per tag: rendered as an inactive schedule


def schedule_fragment(cron: str) -> list[str]:
    """Pieces of text the UI's description of a 5-field cron must contain (the UI words
    it with cronstrue: "At 02:00 AM, only on Sunday", "Every 5 minutes every day")."""
    minute, hour, _dom, _month, dow = cron.split()
    want: list[str] = []
    if minute.isdigit() and hour.isdigit():
        h, m = int(hour), int(minute)
        want.append(f"{h % 12 or 12:02d}:{m:02d} {'AM' if h < 12 else 'PM'}")
    elif minute.isdigit() and hour == "*":
        want.append(f"{int(minute)} minutes past the hour")
    elif minute == "*":
        want.append("Every minute")
    elif minute.startswith("*/"):
        want.append(f"Every {minute[2:]} minutes")
    if dow.isdigit():
        want.append(_DAYS[int(dow) % 7])
    return want


def list_deployments(page: Page, ui: str) -> list[DeploymentRow]:
    """Every row of the Deployments page, page after page of the pager."""
    page.goto(f"{ui}/deployments")
    rows: dict[str, DeploymentRow] = {}
    while True:
        page.locator("a.deployment-list__name").first.wait_for()
        page.wait_for_load_state("networkidle")
        for row in page.locator("tbody tr").all():
            name = row.locator("a.deployment-list__name").inner_text().strip()
            tags = row.locator(".deployment-schedule-tags__tag")
            texts = [t.strip() for t in tags.all_inner_texts()]
            inactive = [
                "deployment-list__schedule--inactive" in (t.get_attribute("class") or "")
                for t in tags.all()
            ]
            rows[name] = DeploymentRow(name, texts, inactive)
        pager = page.locator(".p-pager__buttons button")
        following = pager.nth(2)  # first, previous, next, last
        if pager.count() < 4 or following.is_disabled():
            return list(rows.values())
        first_name = page.locator("a.deployment-list__name").first.inner_text()
        following.click()
        page.wait_for_function(
            "n => document.querySelector('a.deployment-list__name')?.textContent.trim() !== n",
            arg=first_name.strip(),
        )


def open_custom_run(page: Page, ui: str, deployment: str) -> None:
    """Deployments page -> the deployment -> Run -> Custom run."""
    page.goto(f"{ui}/deployments")
    page.locator("a.deployment-list__name", has_text=re.compile(f"^{deployment}$")).click()
    page.wait_for_url("**/deployments/deployment/**")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run", exact=True).click()
    page.wait_for_url("**/run**")
    page.locator(".schema-form-property__label").first.wait_for()


def parameter_field(page: Page, parameter: str) -> Locator:
    """A parameter's field in the custom run form."""
    label = page.locator(".schema-form-property__label", has_text=re.compile(f"^{parameter}\\b"))
    return label.locator(_PROPERTY)


def list_parameter(page: Page, parameter: str) -> Locator:
    """The items of a list parameter's form field."""
    return parameter_field(page, parameter).locator(".schema-form-property-array-item")


def set_none(page: Page, parameter: str) -> None:
    """Switch an optional parameter to None (its "list | None" buttons). An emptied list
    would not do: the UI leaves an empty list out of the run's parameters, and the
    deployment's default fills it in again."""
    field = parameter_field(page, parameter)
    field.locator(".p-button-group").first.get_by_role("button", name="None", exact=True).click()
    field.get_by_text('Property is type "None"').wait_for()


def list_values(items: Locator) -> list[str]:
    return [items.nth(i).locator("textarea").input_value() for i in range(items.count())]


def remove_list_item(page: Page, parameter: str, value: str) -> list[str]:
    """Click the bin of ``value`` in a list parameter; the values left."""
    items = list_parameter(page, parameter)
    items.first.wait_for()
    values = list_values(items)
    assert value in values, f"{parameter} holds {values}, not {value}"
    items.nth(values.index(value)).locator("button").first.click()
    return list_values(items)


def submit_custom_run(page: Page, run_name: str) -> None:
    """Name the run (the form's first field, Run Name) and submit it."""
    name = page.locator("input").first
    name.fill(run_name)
    page.get_by_role("button", name="Submit", exact=True).click()
    # The UI moves to the deployment's page once the server has created the run. On
    # SQLite a busy server waits for its database lock (up to the stack's 60 s database
    # timeout) before answering, so the wait is longer than the page's default.
    try:
        page.wait_for_url(re.compile(r".*/deployments/deployment/[^/]+(\?.*)?$"), timeout=150_000)
    except Exception as e:
        toasts = page.locator(".p-toast").all_inner_texts()
        raise AssertionError(
            f"the custom run form did not submit ({type(e).__name__}); still at {page.url};"
            f" the UI's messages: {toasts or 'none'}"
        ) from e


def open_artifacts_tab(page: Page, ui: str, flow_run_id: str) -> None:
    page.goto(f"{ui}/runs/flow-run/{flow_run_id}")
    page.get_by_text("Artifacts", exact=True).click()
    page.wait_for_url("**tab=Artifacts**")
