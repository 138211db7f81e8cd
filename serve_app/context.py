"""Per-replica services for the routes.

Serve runs a copy of the FastAPI app inside each ingress replica, so `app.state` set in the
deployment's constructor is not what routes see. Each replica is its own process: a module-level
slot, filled by the constructor, is the replica's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve_app.errors import Unavailable
from serve_app.services.ai import AiService
from serve_app.services.images import ImageService

if TYPE_CHECKING:
    from serve_app.guards.guard import Guard
    from serve_app.services.urls import UrlService
from serve_app.services.task_events import TaskEvents
from serve_app.services.tasks import TaskService

_image_service: ImageService | None = None
_ai_service: AiService | None = None
_task_service: TaskService | None = None
_task_events: TaskEvents | None = None
_guard: Guard | None = None
_url_service: UrlService | None = None


def set_services(images: ImageService, ai: AiService, tasks: TaskService) -> None:
    global _image_service, _ai_service, _task_service, _task_events
    _image_service, _ai_service, _task_service = images, ai, tasks
    _task_events = TaskEvents(tasks, tasks.settings)


def image_service() -> ImageService:
    if _image_service is None:
        raise Unavailable("the service is still starting")
    return _image_service


def ai_service() -> AiService:
    if _ai_service is None:
        raise Unavailable("the service is still starting")
    return _ai_service


def task_service() -> TaskService:
    if _task_service is None:
        raise Unavailable("the service is still starting")
    return _task_service


def task_events() -> TaskEvents:
    if _task_events is None:
        raise Unavailable("the service is still starting")
    return _task_events


def set_guard(guard: Guard) -> None:
    global _guard
    _guard = guard


def guard() -> Guard:
    if _guard is None:
        raise Unavailable("the service is still starting")
    return _guard


def set_url_service(service: UrlService) -> None:
    global _url_service
    _url_service = service


def url_service() -> UrlService:
    if _url_service is None:
        raise Unavailable("the service is still starting")
    return _url_service
