"""Image operations, one family per module, registered by name in `registry.OPERATIONS`."""

from pipelines.ops import convert, crop, enhance, filters, resize
from pipelines.ops.registry import OPERATIONS

__all__ = ["OPERATIONS", "convert", "crop", "enhance", "filters", "resize"]
