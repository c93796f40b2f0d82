"""What every resolver gets: who is asking, the query service and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adclick.api.admin import Admin
from adclick.api.auth import Principal
from adclick.api.http_cache import Cacheability
from adclick.query.service import QueryService
from adclick.settings import Settings
from adclick.top_lists.feed import TopListFeed


@dataclass
class Context:
    principal: Principal
    queries: QueryService
    feed: TopListFeed
    admin: Admin
    settings: Settings
    # What the request's fields say about reusing its HTTP answer (api/http_cache.py).
    cacheability: Cacheability = field(default_factory=Cacheability)
    # Set by strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] = field(default_factory=dict)
    # The operation's metric label, set by RequestMetrics (api/metrics.py) once it ran.
    operation: str | None = None
