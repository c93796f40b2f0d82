DROP TABLE IF EXISTS top_ads, top_ad_lists;
