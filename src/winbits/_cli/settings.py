"""The job settings the options give (download, upload and set), and the password for
--user: from the environment or typed, never from the command line."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from .._checks import format_headers
from .._downloads import headers_write_only
from .._job import Job
from .._types import (
    AuthScheme,
    CostFlags,
    JobPriority,
    PeerCaching,
    ProxySettings,
    ProxyUsage,
)
from .usage import UsageError


def password_for(args: argparse.Namespace) -> str | None:
    """The password for --user: from the environment variable --password-env names, or
    typed at a terminal; never from the command line, where other users can read it."""
    if args.user is None:
        if args.password_env:
            raise UsageError("--password-env goes with --user")
        return None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise UsageError(f"the environment variable {args.password_env} is not set")
        return password
    if can_prompt():
        return getpass.getpass(f"password for {args.user}: ")
    raise UsageError(
        "--user needs a password: type it at a terminal, or name an environment "
        "variable that holds it with --password-env VAR"
    )


def can_prompt() -> bool:
    """Whether someone can type at standard input (on Windows, a console: isatty() is
    true for NUL too)."""
    if sys.stdin is None or not sys.stdin.isatty():
        return False
    if sys.platform == "win32":
        from .. import _native

        return _native.stdin_is_console()
    return True


def job_settings(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(property, value) for each job setting the options give (download and set)."""
    changes: list[tuple[str, object]] = []
    if args.priority is not None:
        changes.append(("priority", JobPriority[args.priority.upper()]))
    if getattr(args, "description", None) is not None:
        changes.append(("description", args.description))
    for name in ("minimum_retry_delay", "no_progress_timeout", "maximum_download_time"):
        if getattr(args, name) is not None:
            changes.append((name, getattr(args, name)))
    proxy = proxy_setting(args)
    if proxy is not None:
        changes.append(("proxy", proxy))
    if args.transfer_policy is not None:
        policy = CostFlags["TRANSFER_" + args.transfer_policy.upper().replace("-", "_")]
        changes.append(("transfer_policy", policy))
    if getattr(args, "dynamic", False):
        changes.append(("dynamic_content", True))
    return changes


def apply_settings(
    job: Job,
    args: argparse.Namespace,
    password: str | None,
    changes: list[tuple[str, object]] | None = None,
) -> list[str]:
    """The job settings of the options (job_settings(args) unless given), before any
    file is added; -> what was set."""
    done = []
    for name, value in job_settings(args) if changes is None else changes:
        setattr(job, name, value)
        done.append(name)
    if args.branchcache is not None:
        flags = job.peer_caching or PeerCaching(0)
        off = PeerCaching.DISABLE_BRANCH_CACHE
        job.peer_caching = (flags & ~off) if args.branchcache else (flags | off)
        done.append("peer_caching")
    if getattr(args, "headers", None):
        job.custom_headers = dict(args.headers)
        done.append("custom_headers")
        if not getattr(args, "readable_headers", False):
            headers_write_only(job)
    if args.helper_token is not None:
        job.helper_token_flags = args.helper_token
        job.set_helper_token()
        done.append("helper_token")
    if getattr(args, "user", None) is not None and password is not None:
        job.set_credentials(args.user, password, scheme=AuthScheme[args.auth_scheme.upper()])
        done.append("credentials")
    return done


def proxy_setting(args: argparse.Namespace) -> ProxySettings | None:
    if args.no_proxy and (args.proxy or args.proxy_bypass):
        raise UsageError("--no-proxy goes alone, without --proxy or --proxy-bypass")
    if args.no_proxy:
        return ProxySettings(ProxyUsage.NO_PROXY)
    if args.proxy_bypass and not args.proxy:
        raise UsageError("--proxy-bypass goes with --proxy")
    if args.proxy:
        return ProxySettings(ProxyUsage.OVERRIDE, tuple(args.proxy), tuple(args.proxy_bypass or ()))
    return None


def headers_from_env(args: argparse.Namespace) -> None:
    """--header-env NAME=VAR: each header's value from its environment variable, joined
    to the --header ones, before anything is made. A refusal names the header or the
    variable, never the value."""
    for name, var in getattr(args, "header_envs", None) or ():
        value = os.environ.get(var)
        if value is None:
            raise UsageError(f"the environment variable {var} (for header {name}) is not set")
        try:
            format_headers({name: value})
        except ValueError as e:
            raise UsageError(str(e)) from None
        args.headers = [*(args.headers or []), (name, value)]
