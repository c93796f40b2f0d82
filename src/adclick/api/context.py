"""What every resolver gets: who is asking, and the query service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adclick.api.auth import Principal
from adclick.query.service import ClickQueries


@dataclass
class Context:
    principal: Principal
    queries: ClickQueries
    # Set by strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] = field(default_factory=dict)
