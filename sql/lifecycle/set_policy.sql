-- Change one relation's policy (the relation must have one already: see docs/lifecycle.md).
UPDATE retention_policies
SET hot = %(hot)s, cold = %(cold)s, updated_at = now(), updated_by = %(by)s
WHERE relation = %(relation)s
RETURNING relation;
