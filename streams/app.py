"""The faust app for `faust -A streams.app worker`: built here, at import, from the environment.

This is the only place in relearn that builds anything at import time, because `faust -A`
imports a module and looks for `app`; `relearn streams` calls `create_app` itself instead.
"""

from __future__ import annotations

from streams.factory import create_app
from streams.settings import StreamsSettings

app = create_app(StreamsSettings())
