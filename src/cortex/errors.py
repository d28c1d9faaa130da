"""Typed errors. The CLI prints ``Error: <message>`` and exits with ``exit_code``; no traceback.

Messages name the file/record/collection at fault and say what to do next.  Whether a
target error is worth retrying is a property of the class (:class:`TransientTargetError`),
never decided by matching message text.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    CHECK_FAILED = 1  # verify/compare found differences, or --strict saw rejected records
    BAD_INPUT = 2  # missing path, unknown format, bad flags, unreadable source, missing extra
    TARGET = 3  # target unreachable, auth refused, server rejected the request
    CONFLICT = 4  # collection differs (dim/distance), busy, source changed since checkpoint
    PARTIAL = 5  # migrated, but some records were rejected (see the dead-letter file)
    DISK_FULL = 6  # not enough free disk space for the embedded target (checkpoint saved; free space, re-run)
    INTERRUPTED = 130  # SIGINT; 143 for SIGTERM


class CortexError(Exception):
    exit_code = ExitCode.BAD_INPUT


class SourceError(CortexError):
    """The source cannot be read as a whole (missing, unknown format, corrupt, empty)."""


class MissingExtraError(SourceError):
    """An optional library is not installed; the message has the pip command."""


class RecordError(CortexError):
    """One record is bad (raised under --strict; otherwise it goes to the dead-letter file)."""


class TargetError(CortexError):
    """The target refused the request for a reason retrying will not fix."""

    exit_code = ExitCode.TARGET


class TransientTargetError(TargetError):
    """A timeout, reset or overload: safe to retry with backoff."""


class AuthError(TargetError):
    """The server refused the API key."""


class BatchTooLargeError(TargetError):
    """The request exceeded the server's message limit: split the batch and retry."""


class ConflictError(CortexError):
    """The target is not in a state this operation accepts (schema differs, busy, changed)."""

    exit_code = ExitCode.CONFLICT


class CollectionBusyError(ConflictError):
    """Another process holds the collection (embedded) or the migration state."""


class DiskFullError(CortexError):
    """Not enough free disk space where the embedded target writes; the message says how much and where."""

    exit_code = ExitCode.DISK_FULL


class CheckFailed(CortexError):
    """A verification or comparison did not hold."""

    exit_code = ExitCode.CHECK_FAILED


class Interrupted(CortexError):
    exit_code = ExitCode.INTERRUPTED
