"""Typed errors shared by the engine, the client library and the editor plugins.

Every error carries an :class:`ErrorCode` so that it can travel over the wire in an
``error`` message and be turned back into the same exception class on the other side.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """The fixed set of error codes an engine may send. Values are the wire strings."""

    BAD_MESSAGE = "bad_message"  # the frames could not be decoded (magic, header, sizes)
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"  # a limit advertised in `welcome` was exceeded
    INVALID_REQUEST = "invalid_request"  # decoded fine, but a field is missing or wrong
    UNKNOWN_METHOD = "unknown_method"
    UNKNOWN_PACK = "unknown_pack"
    INVALID_PARAMS = "invalid_params"
    PACK_UNAVAILABLE = "pack_unavailable"  # the pack exists but a file is missing/corrupt
    QUEUE_FULL = "queue_full"
    UNKNOWN_JOB = "unknown_job"
    METHOD_FAILED = "method_failed"  # the edit itself raised
    SHUTTING_DOWN = "shutting_down"
    SHARED_MEMORY_UNKNOWN = "shm_unknown"  # a buffer names a ring this engine does not hold
    NO_FACE = "no_face"  # a face pack found no face in the selection
    INTERNAL = "internal"
    # Raised by clients, never sent: what the network or the user's set-up caused, each a
    # sentence of its own in the editors (start the engine, check the keys, try again).
    ENGINE_UNAVAILABLE = "engine_unavailable"  # nothing answers at the endpoint, or it left
    AUTH_FAILED = "auth_failed"  # the engine refused this client's key (or the server key)
    TIMEOUT = "timeout"  # the engine stopped answering, not even heartbeats
    CANCELLED = "cancelled"  # the user cancelled the job

    @classmethod
    def parse(cls, value: object) -> ErrorCode:
        """Map a wire string to a code; unknown strings (from a newer engine) become INTERNAL."""
        try:
            return cls(value)
        except ValueError:
            return cls.INTERNAL


class WordbrushError(Exception):
    """Base class of every error this project raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- decoding and validation (raised by protocol.framing and protocol.messages) ---


class ProtocolError(WordbrushError):
    """A message could not be decoded or failed validation.

    ``ref`` and ``message_type`` are set when the header itself was readable, so that the
    error reply can name the request (and a submit's job) it refuses.
    """

    code = ErrorCode.BAD_MESSAGE
    ref: str | None = None
    message_type: str | None = None


class SharedMemoryUnknown(ProtocolError):
    """A buffer names shared memory the receiver does not hold; the sender should resend
    it as a frame (the engine restarted, or dropped an idle client's rings)."""

    code = ErrorCode.SHARED_MEMORY_UNKNOWN


class UnsupportedVersion(ProtocolError):
    code = ErrorCode.UNSUPPORTED_VERSION


class UnknownMessageType(ProtocolError):
    code = ErrorCode.UNKNOWN_TYPE


class LimitExceeded(ProtocolError):
    """A size or count limit was exceeded (raised before allocation where possible)."""

    code = ErrorCode.TOO_LARGE


class InvalidRequest(ProtocolError):
    """The message decoded, but a field is missing, of the wrong type or out of range."""

    code = ErrorCode.INVALID_REQUEST


# --- client side ---


class ClientError(WordbrushError):
    """Raised by :class:`protocol.client.EngineClient`."""


class EngineUnavailable(ClientError):
    """No engine answered at the endpoint, or it went away in the middle of a job."""

    code = ErrorCode.ENGINE_UNAVAILABLE


class EngineRejected(ClientError):
    """The engine answered with an ``error`` message; ``code`` says which."""

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.INTERNAL) -> None:
        super().__init__(message, code=code)


class VersionMismatch(EngineRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.UNSUPPORTED_VERSION)


class AuthFailed(ClientError):
    """The engine refused this client's CURVE key (or the server key is wrong)."""

    code = ErrorCode.AUTH_FAILED


class Timeout(ClientError):
    """No message at all (not even a heartbeat) came from the engine for too long."""

    code = ErrorCode.TIMEOUT


class JobCancelled(ClientError):
    """The job was cancelled before it produced a result."""

    code = ErrorCode.CANCELLED
