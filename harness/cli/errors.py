"""One rule for every command: the harness's expected errors become a one-line message, exit status 1."""

from __future__ import annotations

import functools

import click

from ..integrity import IntegrityError


def friendly_errors(func):
    """Decorator for click commands: ``ValueError`` (``harness.data.DataError`` and
    ``harness.registry.ProfileError`` are ValueErrors), ``KeyError``, ``FileNotFoundError``,
    ``RuntimeError`` and ``harness.integrity.IntegrityError`` become ``click.ClickException``
    (message only, no traceback, exit status 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError, RuntimeError, IntegrityError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from exc

    return wrapper
