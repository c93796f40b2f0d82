"""adclick: exact, real-time ad click aggregation."""
