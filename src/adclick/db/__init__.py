"""The database: connections, migrations and the per-configuration rollup tables."""
