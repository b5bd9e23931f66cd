"""The agent: Prometheus metrics and the admin API of every policy in the process.

Breakers and bulkheads join the process-wide catalog when they are created (``unlist()``
takes one off); the agent serves them on one background thread of the library (no Python
thread, no GIL taken), ticks the coarse clock and sweeps keyed registries::

    with surgewall.Agent(bind="127.0.0.1:9464") as agent:
        print(agent.url + "/metrics")
        ...

Changes (POST: reset, force open...) need ``Authorization: Bearer <token>`` once a token is set
in ``SURGEWALL_AGENT_TOKEN`` (or a file named by ``SURGEWALL_AGENT_TOKEN_FILE``); without
one they are allowed on a loopback bind only. With ``SURGEWALL_AGENT_TLS_CERT`` and
``SURGEWALL_AGENT_TLS_KEY`` naming PEM files, the port serves HTTPS.

One agent runs per process. After ``os.fork()`` the child does not have the parent's agent (no
thread survives a fork): the copy of the ``Agent`` object says so (``running`` is False, the
rest raises :class:`AgentError`), and the child may start its own on another port.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Optional, Type

from ._native import OK, c_str, ffi, lib, raise_status
from .errors import ConfigError, SurgewallError

_ALREADY_RUNNING = 111
_IO_ERROR = 300


class AgentError(SurgewallError):
    """The agent could not start (already running, address in use), or this process does not
    run the agent a handle refers to (a child made by ``fork()``)."""


class Agent:
    """Starts the agent on ``bind`` (``"host:port"``, loopback by default; port 0 picks a free
    port, see :attr:`port`). Stop it with :meth:`stop` or by leaving the ``with`` block."""

    def __init__(self, bind: str = "127.0.0.1:9464") -> None:
        if not isinstance(bind, str):
            raise ConfigError("bind", f"expected a str such as '127.0.0.1:9464', got {type(bind).__name__}")
        try:
            raw = bind.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ConfigError("bind", f"not encodable as UTF-8: {e.reason}") from None
        out = ffi.new("surgewall_agent **")
        err = ffi.new("surgewall_error **")
        status = lib.surgewall_agent_start(raw, len(raw), out, err)
        if status != OK:
            message, field = "", "bind"
            if err[0] != ffi.NULL:
                message = c_str(lib.surgewall_error_message(err[0]))
                field = c_str(lib.surgewall_error_field(err[0])) or field
                lib.surgewall_error_free(err[0])
            if status in (_ALREADY_RUNNING, _IO_ERROR):
                raise AgentError(message or f"cannot start the agent on {bind}", status)
            if message:
                raise ConfigError(field, message, status)
            raise_status(status, "Agent")
        self._h: Any = out[0]
        self._pid = os.getpid()
        self._bind = bind

    def _live(self) -> Any:
        if self._h is None:
            raise AgentError("the agent was stopped")
        if self._pid != os.getpid():
            raise AgentError(
                f"this agent runs in process {self._pid}, not in this child made by fork(): "
                "start a new Agent here (on another port)"
            )
        return self._h

    @property
    def running(self) -> bool:
        """Whether this agent serves, in this process."""
        return self._h is not None and self._pid == os.getpid()

    @property
    def port(self) -> int:
        """The port it serves on (the one chosen when port 0 was asked for)."""
        out = ffi.new("uint16_t *")
        status = lib.surgewall_agent_port(self._live(), out)
        if status != OK:
            raise_status(status, "Agent")
        return int(out[0])

    @property
    def url(self) -> str:
        """``http://host:port`` of the admin API and ``/metrics``."""
        host = self._bind.rsplit(":", 1)[0] if ":" in self._bind else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stops serving and joins the agent's thread (idempotent). In a child made by
        ``fork()`` it only releases the copy of the handle."""
        h, self._h = self._h, None
        if h is not None:
            status = lib.surgewall_agent_stop(h)
            if status != OK:
                raise_status(status, "Agent")

    def __enter__(self) -> "Agent":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"on {self.url}" if self.running else "stopped"
        return f"<surgewall.Agent {state}>"


def render_metrics(openmetrics: bool = False) -> str:
    """The metrics of every listed policy, as the agent's ``/metrics`` serves them (Prometheus
    text 0.0.4, or OpenMetrics 1.0): for a service that serves its own ``/metrics``."""
    need = ffi.new("size_t *")
    cap = 0
    buf: Any = ffi.NULL
    while True:
        status = lib.surgewall_metrics_render(openmetrics, buf, cap, need)
        if status == OK:
            return str(ffi.string(buf, need[0]).decode("utf-8"))
        if status != 108:  # BUFFER_TOO_SMALL: grow (the text may grow between calls too)
            raise_status(status, "render_metrics")
        cap = int(need[0]) + 4096
        buf = ffi.new("uint8_t[]", cap)
