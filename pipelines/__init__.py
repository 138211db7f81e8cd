"""Pure image compute: decoding under limits, operations, the pipeline spec, analysis.

Nothing here imports ray, fastapi or serve_app, so every function is testable in plain pytest.
"""
