"""The subcommands of the ``hf-elmo`` command line, one module each.

Every command module exposes ``add_parser(subparsers)``, which adds its subcommand to ``hf-elmo`` and sets the
parser's ``func`` default to a ``run(args) -> int`` function; ``hf_elmo.cli`` only wires the modules listed there.
This module holds what they share: turning the errors a user can fix into one-line messages, showing the
package's progress log lines on the console while a command runs, and the Hub push options.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from typing import Any, Callable, Iterator

from ..conversion.allennlp_elmo import ElmoWeightsError
from ..conversion.common import ConversionError

# Errors that come from the user's input or environment (missing or malformed files, bad arguments, an unreachable
# model, an unwritable output): reported as one line, without a traceback. ElmoWeightsError is a ValueError; it is
# listed for the reader (as is the AWD-LSTM converter's AWDLSTMWeightsError, also a ValueError, not imported here).
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    ElmoWeightsError,
    ValueError,
    ConversionError,
    OSError,
)


def one_line(error: BaseException) -> str:
    """The error's message on one line: a multi-line message (e.g. ElmoWeightsError's list of bad datasets) is
    joined with "; ", dropping the list markers."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    head, rest = lines[0], [line.removeprefix("- ").strip() for line in lines[1:]]
    return f"{head} {'; '.join(rest)}" if rest else head


class Interrupted(BaseException):
    """SIGTERM or SIGHUP received: raised where the command is, like KeyboardInterrupt for SIGINT, so that every
    ``finally`` runs (a half-written output is removed) before the command exits. A BaseException, so that no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP raise [`Interrupted`] instead of killing the
    process on the spot (which left hidden partial files and folders behind); the previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """Runs a command; a user error becomes ``prog: error: <one line>`` on stderr and exit status 1; SIGINT, SIGTERM
    and SIGHUP stop it after its clean-up, with one line and the shell's status for the signal (128 + its number)."""
    try:
        with signals_as_interrupts():
            return func(args)
    except USER_ERRORS as error:
        _say(f"{prog}: error: {one_line(error)}")
        return 1
    except KeyboardInterrupt:
        _say(f"{prog}: interrupted (SIGINT)")
        return 128 + signal.SIGINT
    except Interrupted as stop:
        _say(f"{prog}: stopped by {stop}")
        return 128 + stop.signum


def _say(line: str) -> None:
    """``line`` on stderr in one write: under torchrun the ranks share one unbuffered stderr, and ``print``'s two
    writes (the text, then the newline) let another rank's line land between them."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def console_logging(level: int = logging.INFO) -> Iterator[None]:
    """Shows hf_elmo's log records (e.g. "Pushed to <url>") as plain lines on stdout while the block runs, and
    leaves the logging configuration as it was afterwards (commands also run inside other programs and tests)."""
    logger = logging.getLogger("hf_elmo")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, ``(default: X)``, except where there is none to show (None, False:
    the option's help then says what happens without it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads while the command runs (see ``torch_threads``)."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; on a busy machine 1 can be much faster)")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``n`` (when given) while the block runs, and restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """``--push-to-hub REPO_ID [--private] [--revision REV]``: upload the command's output folder in one commit."""
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload the folder to this Hub repository")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument("--revision", metavar="REV", help="Hub branch to push to (created when missing)")


def check_push_arguments(args: argparse.Namespace, options: tuple[str, ...] = ("revision", "private"),
                         pushes: tuple[str, ...] = ("push_to_hub",)) -> None:
    """Raises ValueError when one of ``options`` (e.g. ``--revision``) is given without any of ``pushes``."""
    if any(getattr(args, push) for push in pushes):
        return
    needed = " or ".join("--" + push.replace("_", "-") for push in pushes)
    for option in options:
        if getattr(args, option):
            raise ValueError(f"--{option} only applies with {needed}")


def description(help_text: str) -> str:
    """A command's one-line help (``hf-elmo --help``) as the sentence its own ``--help`` opens with."""
    return help_text[0].upper() + help_text[1:] + "."


def add_command_parser(subparsers: Any, name: str, help_text: str,
                       add_arguments: Callable[[argparse.ArgumentParser], None],
                       run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """Registers the subcommand ``name``: its arguments are ``add_arguments``' (which its standalone script,
    `standalone_main`, uses too) and ``run`` runs it."""
    parser = subparsers.add_parser(name, help=help_text, description=description(help_text))
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def standalone_main(add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], help_text: str,
                    argv: list[str] | None = None, prog: str | None = None) -> int:
    """A command as its own script (the conversion scripts): parses ``argv`` with the command's arguments and runs it
    as ``hf-elmo`` would; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=description(help_text))
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_guarded(run, args, parser.prog)
