DROP TABLE IF EXISTS cold_files, retention_policies;
