"""Errors of the device runtime: each says what was wrong, where, and how to fix it.

``str(error)`` is what an operator sees (the CLI prints it without a traceback), so the message
names the thing (file, output, metadata key, provider) and ``fix`` is the next step to take.
"""

from __future__ import annotations


class InpEdgeError(Exception):
    """Base of every error the device runtime reports to a person."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if not self.fix:
            return self.message
        return f"{self.message}\n  fix: {self.fix}"


class ConfigError(InpEdgeError):
    """A setting (config file, command-line option) is invalid or cannot be honoured here."""


class ModelLoadError(InpEdgeError):
    """The model file is missing, unreadable, truncated or not an ONNX model."""


class ModelContractError(InpEdgeError):
    """The model loads but does not follow the artifact contract (edge/model/contract.py)."""


class ModelInputError(InpEdgeError):
    """An image handed to the model has the wrong shape or dtype."""


class ModelRunError(InpEdgeError):
    """onnxruntime failed while running the model."""


class MissingDependencyError(InpEdgeError):
    """An optional package that this feature needs is not installed."""


class SourceError(InpEdgeError):
    """A frame source (camera, replay folder, video) cannot be opened or stopped delivering."""


class PublishError(InpEdgeError):
    """A ZeroMQ endpoint cannot be bound or connected, or its keys cannot be read."""


class DataError(InpEdgeError):
    """An image folder or image file the user pointed at cannot be used (missing, empty, unreadable)."""
