"""A running ``adclick api`` process and real GraphQL clients (HTTP and WebSocket) for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from gql.transport.websockets import WebsocketsTransport

from adclick.api.auth import new_token
from adclick.settings import Role, Settings
from tests.conftest import free_port


@dataclass(frozen=True)
class Tokens:
    reader: str
    admin: str


def with_tokens(settings: Settings, **updates: Any) -> tuple[Settings, Tokens]:
    """``settings`` with a fresh reader and admin token configured (and other updates)."""
    reader, reader_entry = new_token("test-reader", Role.READER)
    admin, admin_entry = new_token("test-admin", Role.ADMIN)
    configured = settings.model_copy(
        update={"api_tokens": [reader_entry, admin_entry], "api_port": free_port(), **updates}
    )
    return configured, Tokens(reader, admin)


class ApiProcess:
    """``adclick api`` in its own process, ready when /readyz says so."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.api_port}"
        self.log_path = log_path
        environment = {**os.environ, **settings.as_environment()}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adclick", "api"],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(timeout_s=60)
        except BaseException:
            self.process.kill()  # never leave a server behind
            self.process.wait()
            self._log.close()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"adclick api exited with {self.process.returncode}; see {self._log.name}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"adclick api not ready after {timeout_s} s; see {self._log.name}")

    def stop(self) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._log.close()
        return code

    def client(self, token: str | None = None, *, websocket: bool = False) -> GraphQL:
        return GraphQL(self.url, token, websocket=websocket)


class GraphQL:
    """A gql client over HTTP, or over WebSocket with graphql-transport-ws."""

    def __init__(self, base_url: str, token: str | None, *, websocket: bool = False) -> None:
        authorization = {"Authorization": f"Bearer {token}"} if token else {}
        transport: HTTPXTransport | WebsocketsTransport
        if websocket:
            transport = WebsocketsTransport(
                url=base_url.replace("http://", "ws://") + "/graphql",
                init_payload=authorization,
                subprotocols=["graphql-transport-ws"],
            )
        else:
            transport = HTTPXTransport(url=f"{base_url}/graphql", headers=authorization)
        self.client = Client(transport=transport, fetch_schema_from_transport=False)

    def run(self, query: str, **variables: Any) -> dict[str, Any]:
        """The data of a query that must succeed."""
        request = GraphQLRequest(query, variable_values=variables or None)
        result: dict[str, Any] = self.client.execute(request)
        return result

    def subscribe(self, query: str, **variables: Any) -> Iterator[dict[str, Any]]:
        """Results of a subscription as they arrive (WebSocket clients only)."""
        request = GraphQLRequest(query, variable_values=variables or None)
        yield from self.client.subscribe(request)

    def error_codes(self, query: str, **variables: Any) -> list[str]:
        """The codes of a query that must fail."""
        try:
            self.run(query, **variables)
        except TransportQueryError as exc:
            return [error.get("extensions", {}).get("code") for error in exc.errors or []]
        raise AssertionError("the query succeeded, an error was expected")
