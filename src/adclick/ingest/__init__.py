"""Exactly-once ingest: Kafka click events to raw_clicks and the rollups, one transaction a batch.

``clock`` decides late / beyond-horizon per partition, ``batch`` turns consumed messages
into staging rows and dead letters (pure), ``writer`` is the one database transaction,
``worker`` the consumer loop, ``supervisor`` runs several workers.
"""
