"""Errors a user can cause. The CLI prints their message (no traceback) and exits with code 2."""

from __future__ import annotations


class Gen3dError(Exception):
    """Base class for errors caused by user input: the message says what was wrong and what to do."""


class ConfigError(Gen3dError, ValueError):
    """A config file or a ``key=value`` override is wrong (unknown key, wrong type, bad file)."""


class DataError(Gen3dError):
    """A dataset, mesh or image file is missing or corrupt."""


class DeviceError(Gen3dError):
    """A device was asked for that this machine does not have (e.g. ``--device cuda`` without a GPU)."""
