"""Pushes to the Prometheus Pushgateway, with push-add semantics (HTTP POST).

Push-add replaces, within the group (``job`` + grouping key), only the metric names
in the push: a failed backup that pushes its status alone leaves the group's
last-success gauges as they were.

Label values and grouping keys are short, non-secret names (docs/metrics.md); a value
that looks like a URL with credentials is refused. Credentials for a Pushgateway
behind basic auth are passed as ``auth``, never in the URL or in error messages.
"""

from __future__ import annotations

import contextlib
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import (
    basic_auth_handler,
    default_handler,
    delete_from_gateway,
    pushadd_to_gateway,
)

from scholar_ops.monitoring.samples import MetricGroup, Sample, check_label_value, to_registry
from scholar_ops.redaction import redact_url
from scholar_ops.vault.errors import VaultError

DEFAULT_TIMEOUT = 10.0


class PushError(VaultError):
    """A push the Pushgateway did not accept. ``transient``: worth another try (the
    gateway is unreachable, timed out or answered 5xx), unlike a rejected push (4xx)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


def _handler(auth: tuple[str, str] | None) -> Callable[..., Callable[[], None]]:
    if auth is None:
        return default_handler
    username, password = auth

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def _check_grouping(job: str, grouping_key: Mapping[str, str], samples: Sequence[Sample]) -> None:
    if not job:
        raise ValueError("a push needs a job name")
    for key, value in grouping_key.items():
        if not value:
            raise ValueError(f"grouping key {key} is empty")
        check_label_value(key, value)
    for s in samples:
        for key, value in grouping_key.items():
            if key in s.labels and s.labels[key] != value:
                raise ValueError(
                    f"{s.name} has {key}={s.labels[key]!r} but is pushed to the group "
                    f"{key}={value!r}"
                )
        if "job" in s.labels:
            raise ValueError(f"{s.name}: the job label is set by the push, not by a sample")


def push_add(
    gateway_url: str,
    job: str,
    grouping_key: Mapping[str, str],
    samples: Sequence[Sample],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    auth: tuple[str, str] | None = None,
) -> None:
    """Push-add ``samples`` to the group ``job`` + ``grouping_key`` (HTTP POST).

    Raises ``PushError`` naming the gateway (without credentials) on any failure,
    ``ValueError`` for samples that do not belong in the group.
    """
    grouping = dict(grouping_key)
    _check_grouping(job, grouping, samples)
    registry = to_registry(samples)
    _call(
        pushadd_to_gateway,
        gateway_url,
        job,
        grouping,
        timeout,
        auth,
        registry=registry,
    )


def push_group(
    gateway_url: str,
    group: MetricGroup,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    auth: tuple[str, str] | None = None,
) -> None:
    push_add(gateway_url, group.job, group.grouping_key, group.samples, timeout, auth=auth)


def delete_group(
    gateway_url: str,
    job: str,
    grouping_key: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    auth: tuple[str, str] | None = None,
) -> None:
    """Delete a whole group (e.g. a target that is no longer backed up)."""
    _call(delete_from_gateway, gateway_url, job, dict(grouping_key), timeout, auth)


def _call(
    fn: Callable[..., None],
    gateway_url: str,
    job: str,
    grouping: dict[str, str],
    timeout: float,
    auth: tuple[str, str] | None,
    **kw: Any,
) -> None:
    where = redact_url(gateway_url)
    parts = urlsplit(gateway_url if "://" in gateway_url else f"http://{gateway_url}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"the Pushgateway URL {where} carries credentials: pass them as auth instead"
        )
    what = f"group {job} {grouping}"
    try:
        fn(gateway_url, job, grouping_key=grouping, timeout=timeout, handler=_handler(auth), **kw)
    except urllib.error.HTTPError as e:
        body = ""
        with contextlib.suppress(Exception):
            body = e.read().decode(errors="replace").strip()[:500]
        raise PushError(
            f"the Pushgateway at {where} refused the push to {what}: HTTP {e.code} {e.reason}"
            + (f": {body}" if body else ""),
            transient=e.code >= 500 or e.code == 429,
            status=e.code,
        ) from None
    except urllib.error.URLError as e:
        raise PushError(
            f"cannot reach the Pushgateway at {where} (push to {what}): {e.reason}",
            transient=True,
        ) from None
    except (TimeoutError, ConnectionError) as e:
        raise PushError(
            f"cannot reach the Pushgateway at {where} (push to {what}): {e or type(e).__name__}",
            transient=True,
        ) from None
    except OSError as e:  # prometheus_client: "error talking to pushgateway: <code>"
        raise PushError(
            f"the Pushgateway at {where} failed the push to {what}: {e}", transient=True
        ) from None
