"""Reading inputs (images, folders, globs) and writing results (JSON Lines, CSV)."""

from openfer.io.images import ImageReadError, expand_inputs, read_image, to_rgb

__all__ = ["ImageReadError", "expand_inputs", "read_image", "to_rgb"]
