"""Guards for a deployment: realistic uploads, locust users and the load-test runner."""
