"""Answering click queries: per-ad counts and top-N over minute windows, with filters.

``service.ClickQueries`` is the entry point; the GraphQL API is one client of it.
"""
