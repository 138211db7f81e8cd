"""Ray Serve deployments: where and how the pure compute in `pipelines/` runs.

One module per deployment. Each is a thin shell: resources, batching, health and
reconfiguration. Nothing here imports `serve_app`.
"""
