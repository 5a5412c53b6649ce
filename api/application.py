"""The Flask class Shelf runs as: Flask with a cheaper ``ensure_sync``.

Flask calls ``ensure_sync`` on every view and every request hook of every request (15 times for a
product read, counting flask-smorest's wrappers), and each call asks ``inspect.iscoroutinefunction``,
which unwraps and inspects the function again: about a tenth of a cached read's time in Flask. Flask
documents this method as the one to override. A plain function or bound method whose code is not a
coroutine's is returned as it is, which is what Flask would do too; anything else (an ``async def``,
a ``functools.partial``, a callable object) still gets Flask's own answer.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import CO_COROUTINE
from typing import Any

from flask import Flask

MARKER = "_is_coroutine_marker"
"""Set by ``inspect.markcoroutinefunction`` (Python 3.12+) on a plain function that returns a coroutine."""


class Shelf(Flask):
    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        code = getattr(getattr(func, "__func__", func), "__code__", None)
        if code is None or code.co_flags & CO_COROUTINE or hasattr(func, MARKER):
            return super().ensure_sync(func)
        return func
