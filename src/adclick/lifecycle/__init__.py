"""The data lifecycle: retention policies, tiering raw chunks to Parquet in cold storage,
querying cold data, recalculating and reconciling rollups (docs/lifecycle.md)."""
