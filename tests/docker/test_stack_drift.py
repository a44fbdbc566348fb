"""docker/docker-compose.yml against the local stack (`make up`, scholar_ops/stack): the same
services on the same ports, the worker started and stopped the same way, the health service
run the same way, so the two cannot drift apart."""

from __future__ import annotations

import pytest

from scholar_ops.stack import stack
from tests.docker.compose import ServiceSpec, compose_services

# compose service -> the stack's name for the same thing (its port key)
SAME = {
    "prefect-server": "prefect",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "pushgateway": "pushgateway",
    "monitoring-service": "health",
}


@pytest.fixture(scope="module")
def services() -> dict[str, ServiceSpec]:
    return compose_services()


@pytest.mark.parametrize(("service", "key"), sorted(SAME.items()))
def test_each_service_listens_where_the_stack_puts_it(services, service, key):
    published = {p for p in services[service].ports.values() if p is not None}
    assert published == {stack.DEFAULT_PORTS[key]}, (service, services[service].ports)


def test_the_worker_is_started_and_stopped_as_the_stack_does(services):
    worker = services["prefect-worker"]
    expected = stack.worker_argv("prefect", "x")[:-2]  # the stack names each of its workers
    assert list(worker.command) == expected
    assert worker.stop_signal == stack.WORKER_STOP_SIGNALS[0] == "SIGINT"


def test_the_health_service_runs_the_same_module_and_port(services):
    health = services["monitoring-service"]
    expected = stack.health_argv("python", "0.0.0.0", stack.DEFAULT_PORTS["health"])
    assert list(health.command) == expected


def test_the_work_pool_is_the_one_deployments_use():
    from tests.docker.paths import REPO, load_yaml

    doc = load_yaml(REPO / "deployments.yaml")
    pools = {d["work_pool"]["name"] for d in doc["deployments"]}
    assert pools == {stack.WORK_POOL}
