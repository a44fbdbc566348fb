"""Pushes to a real Pushgateway: push-add keeps other names, errors name the gateway."""

from __future__ import annotations

import uuid

import httpx
import pytest

from scholar_ops.monitoring import names
from scholar_ops.monitoring.push import PushError, delete_group, push_add
from scholar_ops.monitoring.samples import counter, gauge
from scholar_ops.redaction import redact_url
from scholar_ops.sources.process import free_port


def _group_samples(pushgateway, name, **labels):
    fam = pushgateway.families().get(name)
    if fam is None:
        return []
    return [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def test_push_add_replaces_only_the_pushed_names(pushgateway):
    target = f"t-{uuid.uuid4().hex[:8]}"
    key = {"component": "redis", "target": target}
    push_add(
        pushgateway.url,
        names.JOB_DATABASES,
        key,
        [gauge(names.REDIS_CLIENTS, 3, key), counter(names.REDIS_COMMANDS, 100, key)],
    )
    push_add(pushgateway.url, names.JOB_DATABASES, key, [gauge(names.REDIS_CLIENTS, 4)])
    fams = pushgateway.families()
    assert fams[names.REDIS_COMMANDS].type == "counter"
    assert fams[names.REDIS_CLIENTS].type == "gauge"
    clients = _group_samples(pushgateway, names.REDIS_CLIENTS, target=target)
    assert [(s.value, s.labels["job"], s.labels["component"]) for s in clients] == [
        (4.0, names.JOB_DATABASES, "redis")
    ]
    commands = _group_samples(pushgateway, names.REDIS_COMMANDS, target=target)
    assert [s.value for s in commands] == [100.0]  # kept: not in the second push
    delete_group(pushgateway.url, names.JOB_DATABASES, key)
    assert _group_samples(pushgateway, names.REDIS_CLIENTS, target=target) == []


def test_grouping_values_with_slashes_and_spaces(pushgateway):
    target = f"/srv/uploads {uuid.uuid4().hex[:6]}"
    key = {"component": "files", "target": target}
    push_add(pushgateway.url, names.JOB_BACKUP, key, [gauge(names.BACKUP_LAST_STATUS, 1, key)])
    assert [
        s.value for s in _group_samples(pushgateway, names.BACKUP_LAST_STATUS, target=target)
    ] == [1.0]


def test_unreachable_gateway_is_a_transient_error_naming_it():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PushError, match=f"cannot reach the Pushgateway at {url}") as info:
        push_add(url, names.JOB_SYSTEM, {"instance": "h"}, [gauge(names.SYSTEM_LOAD1, 1)], 2)
    assert info.value.transient


def test_rejected_push_is_not_transient(pushgateway):
    # The same name as a gauge in one group (pushed raw) and a counter in another: the
    # gateway's consistency check answers 400.
    name = f"scholar_ops_test_{uuid.uuid4().hex[:8]}_total"
    raw = f"# TYPE {name} gauge\n{name} 1\n"
    httpx.post(
        f"{pushgateway.url}/metrics/job/scholar-ops-test/instance/a", content=raw
    ).raise_for_status()
    with pytest.raises(PushError, match=rf"{pushgateway.url} refused .* HTTP 400") as info:
        push_add(pushgateway.url, "scholar-ops-test", {"instance": "b"}, [counter(name, 2)])
    assert not info.value.transient and info.value.status == 400
    delete_group(pushgateway.url, "scholar-ops-test", {"instance": "a"})


def test_no_credentials_in_urls_labels_or_messages():
    with pytest.raises(ValueError, match="carries credentials") as info:
        push_add("http://user:hunter2@127.0.0.1:9/", names.JOB_SYSTEM, {"instance": "h"}, [])
    assert "hunter2" not in str(info.value)
    assert redact_url("https://u:p@gw.example:9091/?x=1") == "https://gw.example:9091/"
    with pytest.raises(ValueError, match="credentials"):
        push_add("http://127.0.0.1:9", names.JOB_APP, {"endpoint": "https://a:b@x"}, [])
    with pytest.raises(ValueError, match="pushed to the group"):
        push_add(
            "http://127.0.0.1:9",
            names.JOB_BACKUP,
            {"component": "redis", "target": "a"},
            [gauge(names.BACKUP_LAST_STATUS, 1, {"component": "redis", "target": "b"})],
        )
