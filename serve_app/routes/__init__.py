"""HTTP routes, one module per resource. All share the JSON error shape of serve_app.errors."""
