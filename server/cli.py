"""``llmgate`` command line: ``serve`` and ``check-config``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from router.errors import ConfigError

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

    config = load_config(args.config)
    key_env = config.server.master_key_env
    if not os.environ.get(key_env) and not _is_loopback(args.host):
        print(
            f"llmgate: refusing to listen on {args.host} without a client key: set the "
            f"environment variable {key_env} (or bind to 127.0.0.1 for local use).",
            file=sys.stderr,
        )
        return 2
    os.environ["LLMGATE_CONFIG"] = os.path.abspath(args.config)
    if not os.environ.get(key_env):
        print(
            f"llmgate: no {key_env} set; accepting unauthenticated requests on loopback.",
            file=sys.stderr,
        )
    print(
        f"llmgate: serving {args.config} on http://{args.host}:{args.port}/v1 "
        f"with {args.workers} worker(s)",
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


def _check_config(args: argparse.Namespace) -> int:
    from providers import load_config

    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.providers)} providers, {len(config.routes)} routes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmgate", description="A declarative LLM router.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default="config.example.toml", help="TOML configuration file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"llmgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
