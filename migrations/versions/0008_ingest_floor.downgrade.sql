DROP TABLE IF EXISTS ingest_floor;
