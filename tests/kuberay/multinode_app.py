"""The app tests/kuberay/test_multinode.py deploys: the real Ingress and Preprocessor
deployments, without the model deployments.

The multi-node test exercises the image routes (ingress -> Preprocessor over a handle), which
need no model; loading YOLO, OCR and face models on every start would cost minutes and GiBs on
a 2-core machine. The Ingress takes five handles, so the three model slots and the
TaskRunner's get the Preprocessor's: the test never calls an AI or batch route.

Serve imports this module by path (`tests.kuberay.multinode_app:app`); the test puts the
repository on the nodes' PYTHONPATH.
"""

from __future__ import annotations

from ray.serve import Application

from deployments.preprocessor import Preprocessor
from serve_app.ingress import Ingress

_preprocessor = Preprocessor.bind()  # type: ignore[attr-defined]
app: Application = Ingress.bind(  # type: ignore[attr-defined]
    _preprocessor, _preprocessor, _preprocessor, _preprocessor, _preprocessor
)
