-- The keys and other indexes of a table, as DDL: the query benchmark drops them before
-- its bulk load and re-creates them after it (building an index once, sorted, is far
-- cheaper than hundreds of millions of random B-tree inserts).
SELECT 'constraint' AS kind, c.conname AS name, pg_get_constraintdef(c.oid) AS definition
FROM pg_constraint AS c
WHERE c.conrelid = %(table)s::regclass AND c.contype IN ('p', 'u')
UNION ALL
SELECT 'index', i.relname, pg_get_indexdef(i.oid)
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE x.indrelid = %(table)s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
ORDER BY 1, 2;
