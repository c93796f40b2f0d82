DROP TABLE IF EXISTS skipped_top_lists;
