"""Which Prefect server a run's flow reports to.

A temporary server costs each run about 8 s on this 2-core machine (start, migrate its database,
stop), most of the gap between a Prefect night and a thread-pool night (issue 16). A long-lived
server (`make prefect-server`, docs/operations.md, "Prefect server") starts once, keeps every run's history and
serves the Prefect UI. `run.prefect_api_url` names it; unset, Prefect's own PREFECT_API_URL (the
environment, a profile, a test harness) applies. A named server that does not answer is one
warning, and the run goes on with a temporary server: a night is never lost to its dashboard.
"""
from __future__ import annotations

import contextlib
import logging
import urllib.error
import urllib.request
from typing import Iterator

log = logging.getLogger("mlb.prefect")
HEALTH_TIMEOUT_S = 3.0  # a local server answers in milliseconds; a dead host must not hold the night


def answers(api_url: str, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
    """None when `<api_url>/health` answers 200; otherwise why not, in a few words."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # 401/403: a server that wants credentials is still there
        return None if exc.code in (401, 403) else f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


@contextlib.contextmanager
def prefect_server(configured: str | None) -> Iterator[str | None]:
    """Prefect's settings for one flow run; yields the API URL used, None for a temporary server."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = configured or PREFECT_API_URL.value()
    if FlowRunContext.get() is not None:  # inside a flow run (the nightly deployment): its server it is
        yield PREFECT_API_URL.value()
        return
    if not url:
        yield None
        return
    problem = answers(url)
    if problem is None:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
        return
    log.warning("the Prefect server at %s does not answer (%s); this run uses a temporary server", url, problem)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield None
