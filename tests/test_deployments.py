"""deployments.yaml: every entrypoint is a flow, every parameter exists on it, schedules parse."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import Flow

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = yaml.safe_load((ROOT / "deployments.yaml").read_text())["deployments"]


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_points_at_a_flow_with_those_parameters(dep):
    path, func = dep["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, func)
    assert isinstance(flow, Flow)
    sig = inspect.signature(flow.fn)
    assert set(dep.get("parameters", {})) <= set(sig.parameters)
    required = {n for n, p in sig.parameters.items() if p.default is inspect.Parameter.empty}
    assert required <= set(dep.get("parameters", {})), f"{dep['name']} misses required parameters"
    for sched in dep.get("schedules", []):
        CronSchedule(cron=sched["cron"], timezone=sched.get("timezone", "UTC"))
    assert not any(
        "password" in k or "key" in str(v).lower() for k, v in dep.get("parameters", {}).items()
    )


def test_every_flow_has_a_deployment():
    entry = {d["entrypoint"] for d in DEPLOYMENTS}
    for path in (ROOT / "flows").rglob("*.py"):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for name, obj in vars(module).items():
            if isinstance(obj, Flow) and obj.fn.__module__ == module.__name__:
                assert f"{path.relative_to(ROOT)}:{name}" in entry, (
                    f"no deployment for {path}:{name}"
                )


def test_one_name_per_flow():
    """File, function, flow name and deployment name are one name (dashes in names)."""
    for dep in DEPLOYMENTS:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert Path(path).stem == func, dep["entrypoint"]
        assert flow.name == func.replace("_", "-") == dep["name"], dep["entrypoint"]


def test_pull_step_is_ours_and_needs_no_variable():
    """The pull step is importable by its dotted name, takes the inputs given here and sets
    the working directory to this checkout without SCHOLAR_OPS_HOME (tests/scholar_ops/
    test_project.py runs it through Prefect from another directory)."""
    from prefect.utilities.importtools import import_object

    pull = yaml.safe_load((ROOT / "deployments.yaml").read_text())["pull"]
    assert len(pull) == 1
    [(name, inputs)] = pull[0].items()
    step = import_object(name)
    assert set(inputs) <= set(inspect.signature(step).parameters)
    assert "$" not in str(inputs)  # no environment variable the worker must carry


RESTORE_PLACES = {
    "restore-postgres": "database",
    "restore-redis": "rdb_dir",
    "restore-chroma": "directory",
    "restore-files": "destination",
}


@pytest.mark.parametrize("name", sorted(RESTORE_PLACES))
def test_restore_deployments_name_no_fixed_place(name):
    """A fixed default destination works once, then fails with TargetNotEmpty: the restore
    flows make a new place per run when none is given."""
    dep = next(d for d in DEPLOYMENTS if d["name"] == name)
    assert RESTORE_PLACES[name] not in dep.get("parameters", {})
    path, func = dep["entrypoint"].split(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)
    assert inspect.signature(flow.fn).parameters[RESTORE_PLACES[name]].default is None
