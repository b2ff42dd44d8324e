"""User-facing errors: each message says what to do; the CLI prints it on one line, exit 2."""


class DparenaError(Exception):
    """A mistake the user can fix (bad input, unknown name, missing asset or extra)."""

    exit_code = 2


class UnknownNameError(DparenaError, KeyError):
    """A registry lookup failed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(DparenaError):
    """A suite file, option or parameter is invalid."""


class DuplicateNameError(ConfigError, ValueError):
    """A registration reuses a name that is already registered (a ValueError, as it always was)."""


class SchemaError(DparenaError):
    """Data does not match a dataset's public schema."""


class AssetError(DparenaError):
    """An asset could not be obtained or failed verification."""


class MissingExtraError(DparenaError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"{package} is not installed: run `pip install 'dparena[{extra}]'`")


class PrivacyError(Exception):
    """A method broke the privacy contract (e.g. overspent its budget). Not a user error."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a one-line 'install dparena[extra]' error."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module.split(".")[0], extra) from exc
