"""One error tree for rldata.

Every error a user can trigger is an :class:`RldataError`, and each child also
subclasses the builtin it refines, so ``except ValueError`` keeps working for
callers who do not know rldata. Messages name the key, path or value at fault
and what was expected.
"""

from __future__ import annotations


class RldataError(Exception):
    """Base of every error rldata raises on purpose."""


# --- data contract -----------------------------------------------------------
class TedFormatError(RldataError, ValueError):
    """A TensorDict does not follow the TED row contract (missing key, wrong shape/dtype)."""


class SchemaMismatchError(TedFormatError):
    """A write does not match the schema a store or storage was created with."""


class SpecError(RldataError, ValueError):
    """A spec is malformed, cannot be converted, or a value lies outside it."""


# --- stores ------------------------------------------------------------------
class UntrustedFileError(RldataError, ValueError):
    """A file that came with data is not a regular file, is too large or nests too deep."""


class StoreError(RldataError):
    """Base of store failures."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store (no ``rldata.json`` manifest) at the given path or URL."""


class StoreExistsError(StoreError, FileExistsError):
    """``create`` was asked to write where a store or other files already exist."""


class StoreLockedError(StoreError, RuntimeError):
    """Another writer holds the store's lock."""


class FormatVersionError(StoreError, ValueError):
    """The manifest was written by a newer, incompatible format version."""


class CorruptStoreError(StoreError, ValueError):
    """Checksums or TED invariants do not hold for committed data."""


class RowIndexError(StoreError, IndexError):
    """Positions asked of a store are not among its readable (committed) rows."""


class UnknownBackendError(StoreError, ValueError):
    """A backend name is not in the registry."""


class UnsupportedURLError(StoreError, ValueError):
    """A store URL's scheme is unknown to fsspec or refused for safety."""


class TransferError(StoreError, OSError):
    """A push or pull could not finish: an object failed verification or the source changed."""


class DiskFullError(RldataError, OSError):
    """A write found no room (ENOSPC, EDQUOT, EFBIG); the message names the path."""


class MissingDependencyError(RldataError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


# --- buffers -----------------------------------------------------------------
class EmptyBufferError(RldataError, ValueError):
    """Sampling was asked of a buffer (or sampler) that holds too few rows."""


# --- environments ------------------------------------------------------------
class EnvNotFoundError(RldataError, ValueError):
    """An environment id is not registered with gymnasium."""


class UntrustedEnvIdError(EnvNotFoundError):
    """An env id read from data (a manifest, a run file, Minari or policy metadata) names a
    module to import or is not registered: rldata makes envs only from ids the user gives."""


class EnvClosedError(RldataError, RuntimeError):
    """A method was called on an environment after ``close()``."""


# --- configuration -------------------------------------------------------------
class ConfigError(RldataError, ValueError):
    """A configuration value (CLI option, config field) is out of its allowed range."""


class MemoryBudgetError(RldataError, MemoryError):
    """An operation would hold more bytes in memory than its budget allows."""


class InputTypeError(ConfigError, TypeError):
    """An argument is of a type the function does not accept (the message names the type)."""


class DestinationOverlapError(StoreExistsError, ConfigError):
    """A command's destination is, lies inside, or contains one of its sources."""
