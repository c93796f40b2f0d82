"""The GraphQL API (strawberry on starlette) with /metrics, /healthz and /readyz."""
