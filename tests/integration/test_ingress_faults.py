"""An ingress replica that dies takes only what it must (issue #15, item 11).

`kill -9` of one Ingress replica under 8 clients: requests HAProxy had not yet handed to it go
to the live one (Serve's HAProxy retries a refused connection on another replica:
`retry-on conn-failure`, `option redispatch`), so the requests lost are those the dead replica
was running (and, rarely, one started in the second after it died: bench/faults_ingress.py's
SLACK_S). Each ends as HAProxy ends it: a connection closed without an answer on a keep-alive
connection (its deliberate signal, RFC 9112 9.3.1, that the client may retry), or Serve's 500
on a connection's first request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.faults_ingress import SLACK_S, ingress_replicas, kill_ingress_replica
from serve_app.cli.local import session_processes
from tests.integration.conftest import Service
from tests.integration.loads import ResizeLoad

CLIENTS = 8


def test_a_killed_ingress_replica_takes_only_its_requests_in_flight(
    service: Service, driver: None
) -> None:
    replicas = len(ingress_replicas())
    assert replicas >= 2, "the session's config runs two Ingress replicas"
    with ResizeLoad(service.base_url, CLIENTS) as load:
        time.sleep(3)
        killed_at = kill_ingress_replica()
        time.sleep(6)
    answers = load.answers
    lost = [a for a in answers if a.outcome != "200"]
    after = [a for a in answers if a.started > killed_at + SLACK_S]
    print(f"{len(answers)} requests, lost {[a.outcome for a in lost]}, {len(after)} after the kill")
    assert len(after) > 20, "the load went on after the kill"
    assert all(a.outcome == "200" for a in after), [a.outcome for a in after if a.outcome != "200"]
    assert len(lost) <= CLIENTS  # at most one request per client in flight (or just after)
    assert {a.outcome for a in lost} <= {"RemoteProtocolError", "500"}
    # Serve replaces it; later tests get their two replicas back.
    deadline = time.monotonic() + 90
    while len(ingress_replicas()) < replicas:
        if time.monotonic() > deadline:
            pytest.fail("the killed Ingress replica was never replaced")
        time.sleep(1)


def test_haproxy_retries_refused_connections_on_another_replica(service: Service) -> None:
    """The policy above, as the running HAProxy was configured (serve_app/cli/local.py's
    HAPROXY_RETRIES reaches Serve's template)."""
    assert service.cluster.process is not None
    haproxy = [
        p.cmdline() for p in session_processes(service.cluster.process.pid) if p.name() == "haproxy"
    ]
    assert haproxy, "this cluster runs HAProxy"
    command = haproxy[-1]
    config = Path(command[command.index("-f") + 1]).read_text()
    lines = {line.strip() for line in config.splitlines()}
    assert {"retry-on conn-failure", "retries 3", "option redispatch 1"} <= lines
