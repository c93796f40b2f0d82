-- One row per `adclick reconcile` run (docs/lifecycle.md). The API's /metrics reports the
-- newest: adclick_reconcile_discrepancies and adclick_reconcile_last_run_timestamp_seconds.
CREATE TABLE reconciliations (
    id bigserial PRIMARY KEY,
    ran_at timestamptz NOT NULL DEFAULT now(),
    range_start timestamptz NOT NULL,
    range_end timestamptz NOT NULL,
    rows_checked bigint NOT NULL,
    discrepancies bigint NOT NULL
);
