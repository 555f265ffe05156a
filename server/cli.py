"""``llmgate`` command line: ``serve``, ``check-config``, ``db``, ``config``, ``revisions``."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping

from providers.config import ServerSettings
from router.errors import ConfigError, LLMGateError
from server.version import VERSION

__all__ = ["main"]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from providers import load_config
    from server.store import DATABASE_URL_ENV, database_url, display_url

    config = load_config(args.config)
    key_env = config.server.master_key_env
    if not os.environ.get(key_env) and not _is_loopback(args.host):
        print(
            f"llmgate: refusing to listen on {args.host} without a client key: set the "
            f"environment variable {key_env} (or bind to 127.0.0.1 for local use).",
            file=sys.stderr,
        )
        return 2
    url = database_url(args.database_url)
    _migrate(url)  # once, before any worker starts
    from server.store import commands

    apply = args.apply_config or config.server.config_source == "file"
    commands.run(commands.drift(url, args.config, apply=apply))
    os.environ["LLMGATE_CONFIG"] = os.path.abspath(args.config)
    os.environ[DATABASE_URL_ENV] = url  # absolute: every worker opens the same database
    if not os.environ.get(key_env):
        print(
            f"llmgate: no {key_env} set; accepting unauthenticated requests on loopback.",
            file=sys.stderr,
        )
    admin_env = config.server.admin_key_env
    if not os.environ.get(admin_env):
        print(f"llmgate: no {admin_env} set; the admin API is disabled.", file=sys.stderr)
    from server.dashboard.auth import FIRST_RUN_ENV

    if first_run_link(args.host, config.server, os.environ):
        token = commands.run(_issue_link(url))
        os.environ[FIRST_RUN_ENV] = "1"
        print(
            "llmgate: no admin key or password is set; sign in to the dashboard once with "
            f"http://{args.host}:{args.port}/admin/login?token={token} (valid 15 minutes)",
            file=sys.stderr,
        )
    else:
        os.environ.pop(FIRST_RUN_ENV, None)
    print(
        f"llmgate: serving on http://{args.host}:{args.port}/v1 with {args.workers} "
        f"worker(s); policies from {display_url(url)} (seeded from {args.config} if empty)",
        file=sys.stderr,
    )
    uvicorn.run(
        "server.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return 0


def first_run_link(host: str, settings: ServerSettings, environ: Mapping[str, str]) -> bool:
    """Whether ``serve`` prints a one-time dashboard sign-in link: no admin key or
    password is set, and it listens on a loopback address only."""
    secrets = (environ.get(settings.admin_key_env), environ.get(settings.admin_password_env))
    return not any(secrets) and _is_loopback(host)


async def _issue_link(url: str) -> str:
    from server.store import create_engine
    from server.store.login_links import issue_link

    engine = create_engine(url)
    try:
        return await issue_link(engine)
    finally:
        await engine.dispose()


def _migrate(url: str) -> None:
    from server.store import commands, create_engine, migrate

    async def upgrade() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    commands.run(upgrade())  # a database failure becomes a DatabaseError: exit code 2


def _check_config(args: argparse.Namespace) -> int:
    from providers import load_config

    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.providers)} providers, {len(config.routes)} routes)")
    return 0


def _db(args: argparse.Namespace) -> int:
    from server.store import commands, database_url

    url = database_url(args.database_url)
    if args.db_command == "upgrade":
        return commands.db_upgrade(url, args.revision)
    return commands.db_downgrade(url, args.revision)


def _config(args: argparse.Namespace) -> int:
    from server.store import commands, database_url

    url = database_url(args.database_url)
    match args.config_command:
        case "plan":
            return commands.run(commands.plan(url, args.file, prune=args.prune))
        case "apply":
            actor = args.actor or _default_actor()
            return commands.run(commands.apply(url, args.file, prune=args.prune, actor=actor))
        case _:
            return commands.run(commands.export(url, args.output))


def _revisions(args: argparse.Namespace) -> int:
    from server.store import commands, database_url

    return commands.run(commands.revisions(database_url(args.database_url), args.limit))


_BUDGET_FIELDS = [
    f"{metric}_per_{period}"
    for metric in ("usd", "tokens", "requests")
    for period in ("minute", "hour", "day", "month")
] + ["timezone", "window"]


def _keys(args: argparse.Namespace) -> int:
    from server.store import commands, database_url

    return commands.run(
        commands.keys(
            database_url(args.database_url),
            args.keys_command,
            ref=getattr(args, "key", None),
            name=getattr(args, "name", None),
            routes=getattr(args, "routes", None),
            budget={
                field: value
                for field in _BUDGET_FIELDS
                if (value := getattr(args, f"budget_{field}", None)) is not None
            },
        )
    )


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: $LLMGATE_DATABASE_URL, else sqlite file ./llmgate.db)",
    )


def _add_store_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the schema to the latest (or REV)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="migrate the schema back to REV ('base': empty)")
    down.add_argument("revision")
    for p in (up, down):
        _add_database_url(p)
        p.set_defaults(func=_db)

    config = sub.add_parser("config", help="the configuration in the database")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    plan = config_sub.add_parser("plan", help="show what `config apply FILE` would change")
    apply = config_sub.add_parser("apply", help="apply a TOML file as one new revision")
    for p in (plan, apply):
        p.add_argument("file")
        p.add_argument(
            "--prune", action="store_true", help="also remove providers and routes not in FILE"
        )
    apply.add_argument("--actor", help="who to record for the revision (default: cli:$USER)")
    export = config_sub.add_parser("export", help="write the live configuration as TOML")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    for p in (plan, apply, export):
        _add_database_url(p)
        p.set_defaults(func=_config)

    keys = sub.add_parser("keys", help="virtual API keys for clients")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--routes", help="comma-separated routes it may use (default: all)")
    for field in _BUDGET_FIELDS:
        kind = str if field in ("timezone", "window") else float if field.startswith("usd") else int
        create.add_argument(
            f"--budget-{field.replace('_', '-')}",
            dest=f"budget_{field}",
            type=kind,
            help=argparse.SUPPRESS
            if field != "usd_per_day"
            else "the key's budget "
            "(also --budget-{usd,tokens,requests}-per-{minute,hour,day,month}, "
            "--budget-timezone, --budget-window calendar|rolling)",
        )
    listing = keys_sub.add_parser("list", help="every key, revoked ones included")
    rotate = keys_sub.add_parser("rotate", help="a new secret for KEY; the old one stops working")
    revoke = keys_sub.add_parser("revoke", help="revoke KEY on every gateway")
    for p in (rotate, revoke):
        p.add_argument("key", help="the key's id (key_...) or the name of an active key")
    for p in (create, listing, rotate, revoke):
        _add_database_url(p)
        p.set_defaults(func=_keys)

    revisions = sub.add_parser("revisions", help="list configuration revisions, newest first")
    revisions.add_argument("--limit", type=int, default=50)
    _add_database_url(revisions)
    revisions.set_defaults(func=_revisions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmgate", description="A declarative LLM router.")
    parser.add_argument("--version", action="version", version=f"llmgate {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default="config.example.toml", help="TOML configuration file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument(
        "--apply-config",
        action="store_true",
        help="make --config the source of truth: apply it as a revision when it differs "
        'from the database (as [server] config_source = "file")',
    )
    _add_database_url(serve)
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    _add_store_commands(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"llmgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except LLMGateError as exc:
        print(f"llmgate: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
