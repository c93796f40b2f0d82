-- Where to look for messages of lists published but not yet marked (after a crash).
SELECT max(published_offset) FROM top_ad_lists;
