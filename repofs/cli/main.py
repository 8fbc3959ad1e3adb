"""The ``repofs`` command: global options, the command table, and the error boundary."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import trio

from .. import __version__
from ..errors import Interrupted, RepofsError
from .context import GlobalOptions

F = TypeVar("F", bound=Callable[..., Any])


def global_options(fn: F) -> F:
    """Options restic takes anywhere on the line; valid before and after the command name."""
    decorators = [
        click.option("-r", "--repo", "repo", metavar="REPOSITORY",
                     help="Repository location (env: RESTIC_REPOSITORY, REPOFS_REPOSITORY)."),
        click.option("-p", "--password-file", metavar="FILE",
                     help="Read the password from FILE (env: RESTIC_PASSWORD_FILE)."),
        click.option("--password-command", metavar="CMD",
                     help="Run CMD to get the password (env: RESTIC_PASSWORD_COMMAND)."),
        click.option("--no-lock", is_flag=True, default=None, help="Do not lock the repository."),
        click.option("--json", "json", is_flag=True, default=None, help="Print JSON."),
        click.option("-q", "--quiet", is_flag=True, default=None, help="Print less."),
        click.option("--debug", is_flag=True, default=None, help="Show tracebacks of errors."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


_GLOBAL_NAMES = ("repo", "password_file", "password_command", "no_lock", "json", "quiet", "debug")


def take_globals(kwargs: dict[str, Any]) -> GlobalOptions:
    """The GlobalOptions of this invocation, updated with those given after the command."""
    opts: GlobalOptions = click.get_current_context().find_object(GlobalOptions)
    opts.merge(**{n: kwargs.pop(n) for n in _GLOBAL_NAMES if n in kwargs})
    return opts


def run(opts: GlobalOptions, fn: Callable[..., Awaitable[int | None]], *args: Any) -> None:
    """Run one async operation; its return value is the exit code."""
    try:
        code = trio.run(fn, *args)
    except BaseExceptionGroup as group:
        err = _first_user_error(group)
        if err is None:
            raise
        if isinstance(err, BrokenPipeError):
            _reader_gone()
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted("interrupted") from None
        raise err from group
    except BrokenPipeError:
        _reader_gone()
    except KeyboardInterrupt:
        # click would turn it into "Aborted!" and exit code 1.
        raise Interrupted("interrupted") from None
    sys.exit(code or 0)


def _reader_gone() -> None:
    """stdout's reader went away (`| head`): stop quietly with 0, like a C tool would.
    Handled here because click turns EPIPE into exit code 1 before main() could see it;
    fd 1 goes to /dev/null so the final flush at exit cannot fail either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(0)


def _first_user_error(group: BaseExceptionGroup) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, (RepofsError, KeyboardInterrupt, BrokenPipeError)):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_user_error(exc)
            if found is not None:
                return found
    return None


class LazyGroup(click.Group):
    """The command table: command NAME lives in ``cmd_NAME.py`` of this package, which is
    imported only when NAME runs, or when ``--help`` lists every command with its help line.
    Importing a command module adds its command to the group (``@cli.command``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_command_names()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _command_names():
            importlib.import_module(f"{__package__}.cmd_{cmd_name}")
        return self.commands.get(cmd_name)


def _command_names() -> list[str]:
    return [n[4:-3] for n in os.listdir(os.path.dirname(__file__)) if n.startswith("cmd_") and n.endswith(".py")]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="repofs")
@global_options
@click.pass_context
def cli(ctx: click.Context, **kwargs: Any) -> None:
    """Read, browse, dump and write restic repositories."""
    opts = ctx.ensure_object(GlobalOptions)
    opts.merge(**kwargs)
    logging.basicConfig(level=logging.DEBUG if kwargs.get("debug") else logging.WARNING,
                        format="repofs: %(message)s")


def main() -> None:
    """Entry point: the one place where errors become a message and an exit code."""
    # Started with SIGINT ignored (by `nohup`, or as a background job of a script), Python
    # leaves it ignored and `kill -INT` would do nothing; restic (Go) takes it all the same,
    # and so do we: a backup or copy told to stop cleans up and exits 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli(prog_name="repofs")
    except RepofsError as err:
        if "--debug" in sys.argv[1:]:
            logging.exception("error")
        click.echo(f"repofs: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("repofs: interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, like a C tool would.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        sys.exit(0)
