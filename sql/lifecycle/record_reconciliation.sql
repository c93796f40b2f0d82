-- The result of one `adclick reconcile`, for /metrics and audits.
INSERT INTO reconciliations (range_start, range_end, rows_checked, discrepancies)
VALUES (%s, %s, %s, %s)
