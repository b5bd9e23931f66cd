"""The agent from Python: a real server on 127.0.0.1, read back over HTTP and /metrics."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Iterator, Optional

import pytest

import surgewall


@pytest.fixture
def agent() -> Iterator[surgewall.Agent]:
    with surgewall.Agent(bind="127.0.0.1:0") as a:
        yield a


def fetch(url: str, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_json(url: str) -> Any:
    status, body = fetch(url)
    assert status == 200, body
    return json.loads(body)


def state_of(b: surgewall.Breaker) -> surgewall.State:
    """A fresh read (an attribute read would be narrowed by mypy after an assert)."""
    return b.state


def sample(text: str, series: str) -> Optional[float]:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return None


def test_breakers_and_bulkheads_made_in_python_are_served(agent: surgewall.Agent) -> None:
    b = surgewall.Breaker("py-agent-payments", consecutive_failures=1, failure_rate=None)
    db = surgewall.Bulkhead("py-agent-db", max_concurrent=4, max_wait=0)
    b.acquire().success()
    b.acquire().failure()
    assert db.try_acquire()
    try:
        view = get_json(f"{agent.url}/api/resilience/circuit-breakers/py-agent-payments")
        assert view["state"] == "open"
        assert view["totals"]["successes"] == 1 and view["totals"]["failures"] == 1

        status, text = fetch(f"{agent.url}/metrics")
        assert status == 200
        assert sample(text, 'surgewall_circuit_breaker_state{endpoint="py-agent-payments"}') == 1
        assert sample(text, 'surgewall_bulkhead_active_calls{service="py-agent-db"}') == 1
        assert sample(text, 'surgewall_bulkhead_max_concurrent_calls{service="py-agent-db"}') == 4

        status, body = fetch(
            f"{agent.url}/api/resilience/circuit-breakers/py-agent-payments/reset", "POST"
        )
        assert status == 200, body
        assert b.state is surgewall.State.CLOSED
    finally:
        db.release()


def test_a_second_agent_and_a_bad_address_are_clear_errors(agent: surgewall.Agent) -> None:
    with pytest.raises(surgewall.AgentError, match="already running"):
        surgewall.Agent(bind="127.0.0.1:0")
    assert agent.running
    for bad in ["localhost", "127.0.0.1:99999", "127.0.0.1:0\0junk"]:
        with pytest.raises(surgewall.ConfigError) as e:
            surgewall.Agent(bind=bad)
        assert e.value.field == "bind"
    with pytest.raises(surgewall.ConfigError):
        surgewall.Agent(bind="\ud800")


def test_an_address_in_use_is_an_agent_error_naming_it() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    addr = "127.0.0.1:%d" % holder.getsockname()[1]
    try:
        with pytest.raises(surgewall.AgentError, match=addr):
            surgewall.Agent(bind=addr)
    finally:
        holder.close()
    with surgewall.Agent(bind="127.0.0.1:0") as a:  # the failed start left nothing running
        assert a.running


def test_stop_is_idempotent_and_a_stopped_agent_says_so() -> None:
    a = surgewall.Agent(bind="127.0.0.1:0")
    url = a.url
    a.stop()
    a.stop()
    assert not a.running
    with pytest.raises(surgewall.AgentError, match="stopped"):
        a.port
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=2)


def test_render_metrics_without_a_server() -> None:
    b = surgewall.Breaker("py-render", consecutive_failures=1, failure_rate=None)
    b.acquire().failure()
    text = surgewall.render_metrics()
    assert sample(text, 'surgewall_circuit_breaker_state{endpoint="py-render"}') == 1
    assert "# EOF" not in text
    assert surgewall.render_metrics(openmetrics=True).rstrip().endswith("# EOF")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_fork_the_child_is_told_and_can_start_its_own(agent: surgewall.Agent) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        ok = 0
        try:
            ok = int(not agent.running)
            try:
                agent.port
            except surgewall.AgentError as e:
                ok &= "fork" in str(e)
            else:
                ok = 0
            agent.stop()  # releases the copy only
            with surgewall.Agent(bind="127.0.0.1:0") as mine:
                ok &= fetch(mine.url + "/healthz")[0] == 200
        finally:
            os.write(write_end, b"1" if ok else b"0")
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 30
    verdict = b""
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            verdict = os.read(read_end, 1)
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    os.close(read_end)
    assert verdict == b"1"
    assert agent.running and fetch(agent.url + "/healthz")[0] == 200, "the parent's agent still serves"


def test_named_keyed_policies_slos_and_shared_budgets_are_listed(agent: surgewall.Agent) -> None:
    hosts = surgewall.KeyedBreaker("py-agent-hosts", consecutive_failures=1, failure_rate=None)
    hosts.call(7, lambda: None)
    tenants = surgewall.KeyedBulkhead(2, name="py-agent-tenants")
    slo = surgewall.SLO(0.99, name="py-agent-slo")
    unnamed = surgewall.KeyedBulkhead(2)
    key = get_json(f"{agent.url}/api/resilience/keyed-circuit-breakers/py-agent-hosts/keys/7")
    assert key["state"] == "closed" and key["window"]["calls"] == 1
    names = [k["name"] for k in get_json(f"{agent.url}/api/resilience/keyed-bulkheads")["keyed_bulkheads"]]
    assert "py-agent-tenants" in names, names
    slos = [s["name"] for s in get_json(f"{agent.url}/api/resilience/slos")["slos"]]
    assert "py-agent-slo" in slos
    retry = surgewall.Retry(max_attempts=2, name="py-agent-retry", sleep=lambda s: None)

    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(surgewall.RetryError):
        retry.call(fails)
    r = get_json(f"{agent.url}/api/resilience/retries")["retries"]
    mine = [x for x in r if x["name"] == "py-agent-retry"]
    assert mine and mine[0]["operations"] == 1 and mine[0]["stops"]["max_attempts"] == 1, r
    with pytest.raises(surgewall.ConfigError) as e:
        surgewall.SLO(0.99, name="a\0b")
    assert e.value.field == "name"
    del tenants, slo, unnamed


def test_a_token_from_the_environment_guards_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGEWALL_AGENT_TOKEN", "py-t0k3n")
    b = surgewall.Breaker("py-agent-token", consecutive_failures=1, failure_rate=None)
    with surgewall.Agent(bind="127.0.0.1:0") as a:
        url = f"{a.url}/api/resilience/circuit-breakers/py-agent-token/force-open"
        assert fetch(url, "POST")[0] == 401
        assert state_of(b) is surgewall.State.CLOSED
        req = urllib.request.Request(
            url, method="POST", data=b"", headers={"Authorization": "Bearer py-t0k3n"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        assert state_of(b) is surgewall.State.FORCED_OPEN
    monkeypatch.setenv("SURGEWALL_AGENT_TOKEN", "")
    with pytest.raises(surgewall.ConfigError) as e:
        surgewall.Agent(bind="127.0.0.1:0")
    assert e.value.field == "token" and "SURGEWALL_AGENT_TOKEN" in str(e.value)
