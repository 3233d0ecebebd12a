"""Every error geopool raises on purpose.

    GeopoolError
    ├── InvalidArgument (ValueError)       a geopool function was called with a bad argument
    ├── ContractError (ValueError)         a model config or contract override is invalid
    ├── CodecError (ValueError)            a tensor cannot be encoded as asked
    ├── ConfigError (ValueError)           a scenario or SLO file, a records file, or an override is invalid
    ├── RegistryError (ValueError)         the requirements registry or an expectations file is invalid
    ├── FaultSpecError (ValueError)        a fault proxy spec NAME[:PARAMS] is invalid
    ├── CheckpointError (ValueError)       a reference model folder or checkpoint cannot be used
    ├── MalformedResponseError (ValueError) a server answer does not decode to the contract
    ├── ServerError                        talking to a server failed
    │   ├── ServerUnreachableError         connection refused / DNS / reset
    │   ├── ServerTimeoutError             a timeout phase expired
    │   └── PoolingHTTPError               the server answered with a non-2xx status
    ├── TargetError                        a server under test cannot be used (unreachable, unhealthy, ambiguous)
    ├── EmbeddedServerError                the embedded vLLM server could not be started
    ├── InstallError                       geopool's own data files are not installed as files
    └── MissingDependencyError (ImportError) an optional extra is not installed

Lower-level exceptions (httpx, json, binascii, OSError) are translated at the boundary with
``raise ... from exc``; callers only ever need to catch ``GeopoolError``. One meaning per class: a
class is never reused for another kind of problem because its message would read well.
"""

from __future__ import annotations

#: How every geopool command starts the one line that says why it failed (the gate reads the conformance run's).
ERROR_PREFIX = "error: "

class GeopoolError(Exception):
    """Root of every error geopool raises on purpose."""


class InvalidArgument(GeopoolError, ValueError):
    """A geopool function was called with a bad argument; the message names it, shows it and says the fix."""


class ContractError(GeopoolError, ValueError):
    """A model config or contract override is missing a field or has a bad value."""


class CodecError(GeopoolError, ValueError):
    """A tensor cannot be encoded as requested."""


class ConfigError(GeopoolError, ValueError):
    """A load scenario, SLO file or command-line override names a bad field or value."""


class RegistryError(GeopoolError, ValueError):
    """The requirements registry or an expectations file has a bad entry."""


class FaultSpecError(GeopoolError, ValueError):
    """A fault spec ``NAME[:PARAMS]`` names no fault or has a bad parameter."""


class CheckpointError(GeopoolError, ValueError):
    """A reference model folder lacks its config or checkpoint, or the checkpoint lacks weights."""


class MalformedResponseError(GeopoolError, ValueError):
    """A server response does not decode to an array of the contract's shape."""


class ServerError(GeopoolError):
    """Talking to a server failed."""


class ServerUnreachableError(ServerError):
    """The server could not be reached (refused, reset, name not resolved)."""


class ServerTimeoutError(ServerError):
    """A connect/read/write/pool timeout expired."""


class PoolingHTTPError(ServerError):
    """The server answered with a non-2xx status.

    ``status`` is the HTTP status; ``error`` is the decoded ``{"message", "type", "param", "code"}``
    object when the body has vLLM's error shape, else ``None``; ``body`` is the raw text (truncated).
    """

    def __init__(self, status: int, body: str, error: dict | None, path: str) -> None:
        self.status = status
        self.body = body
        self.error = error
        self.path = path
        # Imported here, not at the top: geopool.wire's package imports this module while it loads.
        from geopool.wire.error_body import error_message

        message = error_message(error)
        super().__init__(f"{path} answered HTTP {status}: {message or body[:300]!r}")


class TargetError(GeopoolError):
    """The server under test cannot be used: unreachable, unhealthy, or its model is ambiguous."""


class EmbeddedServerError(GeopoolError):
    """The embedded vLLM server failed to start or died; the message carries its log tail."""


class InstallError(GeopoolError):
    """geopool's shipped data cannot be read as files (installed zipped); reinstall it with pip."""


class MissingDependencyError(GeopoolError, ImportError):
    """An optional dependency is needed for this feature."""


def import_optional(module: str, feature: str, hint: str = "./run setup") -> object:
    """Import ``module`` or raise MissingDependencyError naming the feature and the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the Python package {module!r}, which is not installed here "
            f"({exc}). Install it with: {hint}"
        ) from exc
