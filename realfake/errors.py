"""The one exception type realfake raises on purpose, so callers can tell our errors from bugs."""


class RealfakeError(Exception):
    """A problem with the user's input or setup, described in one clear sentence.

    Every entry point (the library, the CLI, the app) shows ``str(error)`` to the user as is,
    without a traceback.
    """


class ImageError(RealfakeError):
    """An image that cannot be opened, decoded or used for face detection."""


class VideoError(ImageError):
    """A video that cannot be opened or decoded, or exceeds what realfake reads (an ImageError, so
    every batch that goes on past a broken photo goes on past a broken video too)."""


class ModelError(RealfakeError):
    """A classifier that cannot be found, loaded or used as a real/fake model."""
