"""The `relearn` command line and the processes that tie the services together."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("relearn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
