-- Every retention policy.
SELECT relation, hot, cold, updated_at, updated_by FROM retention_policies ORDER BY relation;
