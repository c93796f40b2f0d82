"""The ad manager (web/) at /: its build's files, or, before it is built, a page saying how
to build it. The build is looked for at each request, so building it while the API runs
is enough."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

_NOT_BUILT = """<!doctype html><title>adclick</title>
<h1>The ad manager is not built</h1>
<p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>
(<code>./scripts/demo</code> does); the GraphQL API is at <a href="/graphql">/graphql</a>.</p>
"""


class WebApp:
    """ASGI app for the files of ``dist`` (index.html at /)."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.files = StaticFiles(directory=dist, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (self.dist / "index.html").is_file():
            await HTMLResponse(_NOT_BUILT, status_code=503)(scope, receive, send)
            return
        await self.files(scope, receive, send)
