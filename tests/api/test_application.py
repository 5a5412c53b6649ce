"""The Flask class Shelf runs as: its ensure_sync answers as Flask's own would, only cheaper."""

from __future__ import annotations

import functools

import pytest

from api.application import Shelf


def plain(value):
    return value


async def coroutine(value):
    return value


class View:
    def get(self, value):
        return value

    async def aget(self, value):
        return value

    def __call__(self, value):
        return value


@pytest.fixture
def bare():
    return Shelf(__name__)


@pytest.mark.parametrize(
    "func",
    [plain, View().get, View(), functools.partial(plain, 1)],
    ids=["function", "bound method", "callable object", "partial"],
)
def test_sync_callables_are_returned_as_they_are(bare, func):
    assert bare.ensure_sync(func) is func


@pytest.mark.parametrize(
    "func",
    [coroutine, View().aget, functools.partial(coroutine, 1)],
    ids=["async function", "async method", "partial of one"],
)
def test_coroutine_functions_still_go_to_flask(bare, func):
    # Flask wraps them with asgiref, which Shelf does not install: Flask says so rather than
    # handing the coroutine function back as if it were a view that returns a response.
    with pytest.raises(RuntimeError, match="async"):
        bare.ensure_sync(func)


def test_the_app_factory_builds_this_class(app):
    assert isinstance(app, Shelf)
