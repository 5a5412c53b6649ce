"""The Locust load-test suite (personas and runner arrive with the load-test issue)."""
