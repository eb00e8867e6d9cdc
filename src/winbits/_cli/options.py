"""The command line's parser: every command, its options and their checks."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .._checks import format_headers
from .._types import (
    AuthScheme,
    HelperTokenFlags,
    JobPriority,
)
from . import commands, doctor, history, transfer
from .filters import add_filters
from .usage import UsageError

COMMANDS = (
    "list",
    "watch",
    "download",
    "upload",
    "show",
    "set",
    "cancel",
    "complete",
    "resume",
    "suspend",
    "wait",
    "prune",
    "doctor",
    "history",
    "export",
)

# Without a byte moving for this long, `download` gives up (BITS itself would wait for its
# no-progress timeout: 14 days by default on Windows).
DEFAULT_STALL_TIMEOUT = 300.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2; ours is a usage error: 1
        raise UsageError(f"{self.prog}: {message}")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _ulong_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"must be 0 to 4294967295 seconds: {text!r}")
    return value


def header(text: str) -> tuple[str, str]:
    """--header "Name: value". A refusal names the header, never its value."""
    name, sep, value = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("give a header as 'Name: value' (no ':' found)")
    name, value = name.strip(), value.strip()
    try:
        format_headers({name: value})
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, value


def header_env(text: str) -> tuple[str, str]:
    """--header-env "NAME=VAR": the header NAME with the value of the environment
    variable VAR (read when the command runs), so that a token is not on the command
    line, where other users of the machine can read it."""
    name, sep, var = text.partition("=")
    name, var = name.strip(), var.strip()
    if not sep or not var:
        raise argparse.ArgumentTypeError("give it as 'NAME=VARIABLE' (no '=' found)")
    try:
        format_headers({name: ""})
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, var


def _token_flags(text: str) -> HelperTokenFlags:
    """--helper-token local-file,network -> HelperTokenFlags."""
    flags = HelperTokenFlags(0)
    for name in (n.strip() for n in text.split(",")):
        key = name.upper().replace("-", "_")
        if key not in HelperTokenFlags.__members__:
            raise argparse.ArgumentTypeError(
                f"not a helper token use: {name!r} (local-file, network, or both)"
            )
        flags |= HelperTokenFlags[key]
    return flags


def _settings_parser() -> _Parser:
    """The job settings that download and set share."""
    p = _Parser(add_help=False)
    p.add_argument(
        "--helper-token",
        type=_token_flags,
        metavar="local-file,network",
        help="give the job this process's token as its helper token, for its local files, "
        "the network (SMB, NTLM/Kerberos challenges) or both (BITS 4.0)",
    )
    p.add_argument(
        "--priority",
        choices=[m.name.lower() for m in JobPriority],
        help="how BITS ranks the job against others (default: normal)",
    )
    p.add_argument(
        "--retry-delay",
        dest="minimum_retry_delay",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="wait this long after a transient error before trying again",
    )
    p.add_argument(
        "--no-progress-timeout",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="BITS gives up after this long without progress (the job goes to ERROR)",
    )
    p.add_argument(
        "--max-time",
        dest="maximum_download_time",
        type=_ulong_seconds,
        metavar="SECONDS",
        help="the most the whole job may take (BITS 3.0; 0: no limit)",
    )
    p.add_argument(
        "--proxy",
        action="append",
        metavar="PROXY",
        help="use this proxy (repeatable), e.g. http://proxy:8080",
    )
    p.add_argument(
        "--proxy-bypass",
        action="append",
        metavar="HOST",
        help="hosts reached without --proxy (repeatable; '<local>' for local names)",
    )
    p.add_argument("--no-proxy", action="store_true", help="connect directly, never by proxy")
    p.add_argument(
        "--transfer-policy",
        choices=["always", "unrestricted", "standard", "no-surcharge", "not-roaming"],
        help="on which networks the job transfers, by cost (BITS 5.0): standard waits "
        "near a data cap and when roaming",
    )
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--no-branchcache",
        dest="branchcache",
        action="store_false",
        default=None,
        help="take no bytes from BranchCache peers for this job (BITS 3.0)",
    )
    cache.add_argument(
        "--branchcache",
        dest="branchcache",
        action="store_true",
        default=None,
        help="let the job use BranchCache again",
    )
    return p


def _waiting_parser() -> _Parser:
    """The options of the commands that follow a job to its end (download, upload, wait):
    its limits and the progress line."""
    w = _Parser(add_help=False)
    w.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        help="give up if the transfer has not finished after SECONDS (default: no limit); "
        "download and upload cancel their job, wait leaves it",
    )
    w.add_argument(
        "--stall-timeout",
        type=_seconds_or_zero,
        default=DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when no byte has moved for SECONDS (default {DEFAULT_STALL_TIMEOUT:g}; "
        "0: wait as long as BITS does)",
    )
    w.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line on stderr (the result and any failure are still printed)",
    )
    return w


def _transfer_parser() -> _Parser:
    """The options download and upload share: the job's name, detaching, authentication."""
    t = _Parser(add_help=False)
    t.add_argument("--name", help="the job's display name (default: winbits COMMAND FILE)")
    t.add_argument(
        "--detach",
        action="store_true",
        help="make and resume the job, print its id and return at once; BITS goes on "
        "(--timeout and --stall-timeout become BITS' own limits); `winbits wait ID` "
        "follows and completes it",
    )
    t.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=header,
        metavar="'NAME: VALUE'",
        help="an HTTP header sent with every request (repeatable; never printed)",
    )
    t.add_argument(
        "--header-env",
        dest="header_envs",
        action="append",
        type=header_env,
        metavar="NAME=VAR",
        help="a header whose value is in the environment variable VAR, so that a token is "
        "not on the command line (repeatable; never printed)",
    )
    t.add_argument(
        "--readable-headers",
        action="store_true",
        help="leave the headers readable from the queue (by default they are made "
        "write-only where BITS 10.3 can, so that no other program reads a token back)",
    )
    t.add_argument("--user", help="the user name the server (or proxy) asks for")
    t.add_argument(
        "--password-env",
        metavar="VAR",
        help="the environment variable that holds --user's password (else it is asked for "
        "at the terminal; never on the command line)",
    )
    t.add_argument(
        "--auth-scheme",
        choices=[m.name.lower() for m in AuthScheme],
        default="basic",
        help="how --user's credentials are sent (default: basic)",
    )
    return t


def build_parser() -> argparse.ArgumentParser:
    settings = _settings_parser()
    clsid = _Parser(add_help=False)
    clsid.add_argument("--clsid", help="connect to another COM class (a test double)")
    result = _Parser(add_help=False)  # the one-shot commands' --json: one object
    result.add_argument(
        "--json",
        action="store_true",
        help="one JSON object on stdout: what was done, or the error (docs: JSON output)",
    )
    result.set_defaults(one_object=True)  # its failures print one JSON object too
    users = _Parser(add_help=False)
    users.add_argument(
        "--all-users", action="store_true", help="every user's jobs (needs an administrator)"
    )
    parser = _Parser(
        prog="winbits",
        description=(
            "Windows BITS jobs and files, with bytes from origin and from peers (BranchCache). "
            "Without a command: list."
        ),
    )
    parser.add_argument("--version", action="version", version=f"winbits {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", parents=[clsid, users], help="a table of jobs and their files")
    p.add_argument("--json", action="store_true", help="JSON (keys documented in docs/json.md)")
    add_filters(p)
    p.set_defaults(run=commands.cmd_list)

    p = sub.add_parser("watch", parents=[clsid, users], help="refresh the table until Ctrl-C")
    p.add_argument(
        "--interval",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="seconds between polls (default 2)",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per change")
    p.add_argument(
        "--count", type=_count, default=0, metavar="N", help="stop after N polls (default: never)"
    )
    p.set_defaults(run=commands.cmd_watch)

    moving, waiting = _transfer_parser(), _waiting_parser()
    p = sub.add_parser(
        "download",
        parents=[clsid, settings, moving, waiting, result],
        help="download URLs through BITS",
        description="Creates a BITS job, shows its progress, completes it and "
        "prints the bytes from origin and from peers. Ctrl-C, an error, --timeout or "
        "--stall-timeout cancel the job.",
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="http, https or \\\\server\\share")
    p.add_argument("dest", metavar="DEST", help="a file (one URL) or an existing folder")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="the server's content has no fixed size (a dynamic page): no ranges (BITS 5.0)",
    )
    p.set_defaults(run=transfer.cmd_download)

    p = sub.add_parser(
        "upload",
        parents=[clsid, settings, moving, waiting, result],
        help="upload a file through BITS",
        description="Creates a BITS upload job for an existing file, shows its progress and "
        "completes it. The server must speak BITS' upload protocol (IIS with the BITS "
        "server extension). Ctrl-C, an error, --timeout or --stall-timeout cancel the job.",
    )
    p.add_argument("file", metavar="FILE", help="the file to send")
    p.add_argument("url", metavar="URL", help="where to send it: http or https")
    p.set_defaults(run=transfer.cmd_upload)

    p = sub.add_parser(
        "show",
        parents=[clsid, users],
        help="every property of one job and its files",
        description="Like bitsadmin /info /verbose: every setting BITS gives for the job, "
        "then its files. Custom headers are shown by name, never their values.",
    )
    p.add_argument("id", help="a job id, or its first 4 or more hex digits")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(run=commands.cmd_show)

    p = sub.add_parser(
        "set",
        parents=[clsid, users, settings, result],
        help="change the settings of a job",
        description="Sets what the options give; BITS' own refusal (a job in the wrong "
        "state, a setting this BITS lacks) is one line and exit code 1.",
    )
    p.add_argument("id", help="a job id, or its first 4 or more hex digits")
    p.add_argument("--description", help="the job's description (at most 1,024 characters)")
    p.set_defaults(run=commands.cmd_set)

    for verb in commands.VERBS:
        p = sub.add_parser(
            verb, parents=[clsid, users, result], help=f"{verb} a job by id (or id prefix)"
        )
        p.add_argument("id", help="a job id, or its first 4 or more hex digits")
        if verb == "complete":
            p.add_argument(
                "--force",
                action="store_true",
                help="complete a job that is not TRANSFERRED: its transfer ends, and only "
                "the files that arrived land",
            )
        p.set_defaults(run=commands.cmd_verb)

    p = sub.add_parser(
        "wait",
        parents=[clsid, users, waiting, result],
        help="follow a job until BITS has transferred it, then complete it",
        description="Follows an existing job (download --detach made one) with the progress "
        "line, and completes it with download's landing checks when BITS has transferred it. "
        "A failure or a timeout leaves the job in the queue.",
    )
    p.add_argument("id", help="a job id, or its first 4 or more hex digits")
    p.add_argument(
        "--no-complete", action="store_true", help="return when TRANSFERRED; leave it there"
    )
    p.add_argument("--force", action="store_true", help="replace files that appeared at DEST")
    p.set_defaults(run=transfer.cmd_wait)

    p = sub.add_parser(
        "doctor",
        parents=[clsid, users, result],
        help="whether BITS will work for this account, and if not why",
        description="Checks the BITS service, its version, this process's logon, the proxy, "
        "BranchCache and the queue; says what is wrong and what fixes it. Exit 1 when "
        "something is; a check that cannot be made says unknown.",
    )
    p.set_defaults(run=doctor.cmd_doctor)

    p = sub.add_parser(
        "history",
        parents=[result],
        help="what BITS transferred, and how much came from peers, from its event log",
        description="The file transfers the Microsoft-Windows-Bits-Client/Operational event "
        "log recorded (event 60: one per stop of a file's transfer), and per server (or job) "
        "the bytes, the bytes from peers and the peer share: what BranchCache saved, "
        "including jobs that no poll saw. Reading it may need an administrator or Event Log "
        "Readers.",
    )
    p.add_argument(
        "--since",
        type=history.moment,
        metavar="WHEN",
        help="from this time: 7d, 12h (ago), or 2026-12-01[T08:00] (local time); default: "
        "the log's first event",
    )
    p.add_argument(
        "--until", type=history.moment, metavar="WHEN", help="to this time (default: now)"
    )
    p.add_argument(
        "--by",
        choices=("server", "job"),
        default="server",
        help="the summary per server (default) or per job",
    )
    p.set_defaults(run=history.cmd_history)

    p = sub.add_parser(
        "prune",
        parents=[clsid, users, result],
        help="cancel the jobs every filter given matches",
        description="Cancels the jobs that match every filter given (at least one), and "
        "prints each: id, name, state, age. --dry-run prints them and cancels none.",
    )
    add_filters(p)
    p.add_argument("--dry-run", action="store_true", help="print the jobs; cancel none")
    p.set_defaults(run=commands.cmd_prune)

    p = sub.add_parser(
        "export",
        parents=[clsid, users],
        help="write metrics for Prometheus (windows_exporter textfile collector)",
    )
    p.add_argument(
        "--prometheus", required=True, metavar="FILE", help="the .prom file to write (atomically)"
    )
    p.add_argument(
        "--interval", type=_positive, metavar="SECONDS", help="keep rewriting it every SECONDS"
    )
    p.add_argument(
        "--count",
        type=_count,
        default=0,
        metavar="N",
        help="with --interval: stop after N writes (default: never)",
    )
    p.add_argument(
        "--per-job",
        action="store_true",
        help="also a series per job and per file (for small queues and debugging: "
        "every job is a new series)",
    )
    p.add_argument(
        "--event-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also count the files of jobs that came and went between two polls, from the "
        "Bits-Client event log (default: on where it can be read; never with --clsid)",
    )
    p.set_defaults(run=commands.cmd_export)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "list")  # no command, or options only: list
    elif argv[0] not in COMMANDS and not argv[0].startswith("-"):
        raise UsageError(f"unknown command {argv[0]!r}; the commands are: {', '.join(COMMANDS)}")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        known = {
            option
            for action in parser._subparsers._group_actions  # type: ignore[union-attr]
            for command in action.choices.values()  # type: ignore[union-attr]
            for option in command._option_string_actions
        }
        name = extra[0].split("=", 1)[0]
        if name in known:
            raise UsageError(f"winbits {args.command}: {name} does not apply to {args.command}")
        raise UsageError(f"winbits {args.command}: unrecognized arguments: {' '.join(extra)}")
    return args
