"""The demo: the service on the local stack fed with real and synthetic clicks."""
