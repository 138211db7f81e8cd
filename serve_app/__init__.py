"""The face of the service: HTTP routes, settings, errors, persistence, and the app builder."""
