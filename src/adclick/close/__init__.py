"""The minute closer: top-N lists per window and filter at every closed minute, revised
when late events change them, stored in top_ads and published to the top-ads topic."""
