"""oneshot-mock: an offline sandbox of the Uanataca / Namirial One-Shot Signature API.

Commands: serve (run the sandbox), tail (follow its live events), generate-pki (a test PKI of your
own), error-scenarios (one scenario file per catalogue error), fake-evidences (a VideoID evidences
body), export and import (move a namespace of a data dir). "oneshot-mock COMMAND --help" tells more.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from mock_server import __version__
from mock_server.domain.clock import parse_time
from mock_server.domain.event_kinds import parse_kinds
from mock_server.pki.authority import KEY_TYPES
from mock_server.server import env_options
from mock_server.server.config import Config
from mock_server.server.logs import configure_logging
from mock_server.server.workers import SIGNING_PRIORITIES


def _iso_time(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None


def _ra_webhook(value: str) -> tuple[str, str]:
    ra, _, url = value.partition("=")
    if not ra.strip().isdigit() or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected RA=URL (e.g. 9999=http://127.0.0.1:9000/hook), got {value!r}")
    return ra.strip(), url


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not (0 < seconds < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _request_count(value: str) -> int | None:
    if value.strip().lower() == "none":
        return None
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of requests or 'none', got {value!r}")
    return int(value)


def _duration(value: str) -> timedelta | None:
    if value.strip().lower() == "none":
        return None
    match = _DURATION.fullmatch(value.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m, 12h, 7d or 'none', got {value!r}")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the option and what was wrong), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {value!r}")
    return port


def _positive(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL")
    return value


def _rao(value: str) -> tuple[str, str, str]:
    parts = value.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("give USER:PASS:PIN")
    return parts[0], parts[1], parts[2]


def _kinds(value: str) -> str:
    try:
        return ",".join(parse_kinds(value))
    except ValueError as fault:
        raise argparse.ArgumentTypeError(str(fault)) from None


def build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``oneshot-mock`` parser and its ``serve`` subparser."""
    parser = _Parser(prog="oneshot-mock", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox")
    defaults = Config()
    network = serve.add_argument_group("where it listens")
    behaviour = serve.add_argument_group("random values, OTPs, the clock, seed file and scenarios")
    signing = serve.add_argument_group("signing and PKI")
    hooks = serve.add_argument_group("webhooks")
    control = serve.add_argument_group("control API and namespaces")
    state = serve.add_argument_group("state: persistence, retention, logs")
    limits = serve.add_argument_group("limits on clients: uploads and slow connections")
    network.add_argument("--host", default=defaults.host, help="address to bind (default 127.0.0.1)")
    network.add_argument("--port", type=_port, default=defaults.port,
                         help=f"TCP port to listen on, 1-65535 (default {defaults.port})")
    behaviour.add_argument("--seed", type=int, default=None, metavar="N",
                           help=f"seed of every random value (pks, uids, OTPs); default {defaults.seed}, or drawn "
                                "at random (and logged) with --admin-token, so that nobody can replay its OTPs")
    behaviour.add_argument("--otp", default=None, metavar="CODE", help="fixed OTP code instead of random ones")
    behaviour.add_argument("--otp-ttl", type=float, default=defaults.otp_ttl_seconds, metavar="SECONDS",
                           help="OTP lifetime (default 300)")
    behaviour.add_argument("--otp-resend", type=float, default=defaults.otp_resend_seconds, metavar="SECONDS",
                           help="minimum interval between two OTPs of a request (default 60)")
    signing.add_argument("--pki-dir", type=Path, default=None, metavar="DIR",
                         help="your own CA: directory with root.pem, issuing.pem/.key, tsa.pem/.key")
    behaviour.add_argument("--seed-file", type=Path, default=None, metavar="FILE",
                           help="YAML of settings, RAOs, tokens, images, metadata, requests and VideoID requests "
                                "with fixed ids (docs/seed-files.md)")
    network.add_argument("--log-format", choices=("text", "json"), default=defaults.log_format,
                         help="log lines as text (default) or one JSON object each")
    signing.add_argument("--workers", type=int, default=defaults.workers, metavar="N",
                         help="signing worker processes (default: one per core)")
    signing.add_argument("--signing-priority", choices=SIGNING_PRIORITIES, default=defaults.signing_priority,
                         help="CPU priority of the signing workers: normal (default; a fair share beside other "
                              "work), low (nice 10) or idle (SCHED_IDLE: only CPU nothing else wants)")
    signing.add_argument("--one-shot-key", choices=KEY_TYPES, default=defaults.one_shot_key,
                         help="key of each one-shot certificate: ec-p256 (default; microseconds to make) or "
                              "rsa-2048 (as the vendor's; ~40 ms of CPU each, made ahead in the signing workers)")
    network.add_argument("--public-url", default=None, metavar="URL",
                         help="base URL certificates point at for CRL and OCSP (default: the bound address)")
    hooks.add_argument("--ra-webhook", action=env_options.Repeatable, default=[], metavar="RA=URL", type=_ra_webhook,
                       help="webhook of a Registration Authority (repeatable)")
    hooks.add_argument("--webhook-format", choices=("legacy", "new"), default=defaults.webhook_format,
                       help="payload format of webhooks whose RA sets none (default legacy)")
    hooks.add_argument("--webhook-secret", default=None, metavar="SECRET",
                       help="sign webhooks (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature)")
    hooks.add_argument("--webhook-retry-scale", type=float, default=defaults.webhook_retry_scale, metavar="FACTOR",
                       help="multiply the retry schedule 1 s, 5 s, 30 s, 2 min, 10 min (e.g. 0.001 in tests)")
    behaviour.add_argument("--videoid-auto-complete", type=float, default=None, metavar="SECONDS",
                           help="complete eIDAS identifications by themselves after SECONDS")
    behaviour.add_argument("--clock-start", type=_iso_time, default=None, metavar="ISO-TIME",
                           help="start the sandbox clock at this time (e.g. 2030-01-01T09:00:00Z)")
    behaviour.add_argument("--scenario", action=env_options.Repeatable, type=Path, default=[], metavar="FILE|NAME",
                           help="scenario file (YAML or JSON) to load at start, or the name of one the package "
                                "ships (sms-outage, errors/sign.403.invalid_otp, ...; repeatable)")
    control.add_argument("--admin-token", default=None, metavar="TOKEN",
                         help="require 'Authorization: Bearer TOKEN' on the control API (/_mock/)")
    control.add_argument("--no-control-api", action="store_true", help="serve no control API at all")
    state.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                       help="keep state in DIR (SQLite + files) and restore it at start (default: in memory)")
    control.add_argument("--max-namespaces", type=int, default=defaults.max_namespaces, metavar="N",
                         help="how many X-Mock-Namespace sandboxes may exist at once (default 256)")
    state.add_argument("--max-log-entries", type=int, default=defaults.max_log_entries, metavar="N",
                       help="SMS outbox and webhook log keep the newest N entries (pending webhooks always stay)")
    state.add_argument("--retain-requests", type=_request_count, default=defaults.retain_requests, metavar="N",
                       help="keep the newest N finished requests (ISSUED, CANCELLED) with their documents, SMS and "
                            "webhook log; older ones go, oldest first ('none': keep all; default 1000)")
    state.add_argument("--retain-for", type=_duration, default=defaults.retain_for, metavar="DURATION",
                       help="and none finished longer ago than DURATION in sandbox time (90s, 30m, 12h, 7d; "
                            "default none)")
    limits.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, metavar="MIB",
                        help="per-file upload limit in MiB (default 20)")
    limits.add_argument("--header-timeout", type=_seconds, default=defaults.header_timeout, metavar="SECONDS",
                        help="a request head must be complete within SECONDS of the connection or of its first "
                             "byte, else the connection is closed (default 10)")
    limits.add_argument("--body-timeout", type=_seconds, default=defaults.body_timeout, metavar="SECONDS",
                        help="a request body receiving no data for SECONDS is abandoned with a 408 (default 30)")
    limits.add_argument("--body-deadline", type=_seconds, default=defaults.body_deadline, metavar="SECONDS",
                        help="a request body not complete SECONDS after its head, however it trickles, is "
                             "abandoned with a 408 (default 300)")
    limits.add_argument("--idle-timeout", type=_seconds, default=defaults.idle_timeout, metavar="SECONDS",
                        help="an idle keep-alive connection is closed after SECONDS (default 20)")
    env_options.document(serve)

    evidences = commands.add_parser("fake-evidences", help="print a valid VideoID evidences JSON")
    evidences.add_argument("--locale", default="es_ES", help="Faker locale of the identity (default es_ES)")
    evidences.add_argument("--seed", type=int, default=0, metavar="N",
                           help="seed of the identity and images (default 0)")

    library = commands.add_parser("error-scenarios", help="write one scenario file per catalogue entry to DIR")
    library.add_argument("directory", type=Path)

    generate = commands.add_parser("generate-pki", help="write a fresh test PKI (PEM files) to DIR")
    generate.add_argument("directory", type=Path)
    generate.add_argument("--force", action="store_true", help="replace the PKI DIR already holds, root key included")

    tail = commands.add_parser("tail", help="follow a running sandbox's live events, one line each")
    tail.add_argument("--url", default=f"http://127.0.0.1:{defaults.port}", metavar="URL",
                      help=f"the sandbox (default http://127.0.0.1:{defaults.port})")
    tail.add_argument("--namespace", default=None, metavar="NAME", help="its namespace (default: the default one)")
    tail.add_argument("--pk", type=_positive, default=None, metavar="PK", help="the events of this request only")
    tail.add_argument("--kind", type=_kinds, default=None, metavar="KINDS",
                      help="comma-separated: status, sms, webhook, scenario, clock (default: all)")
    tail.add_argument("--admin-token", default=None, metavar="TOKEN", help="the sandbox's --admin-token")
    tail.add_argument("--count", type=_positive, default=None, metavar="N", help="stop after N events (default: never)")

    check = commands.add_parser("conformance", help="run the documented flows against a target and an embedded "
                                                    "sandbox, and say where they differ")
    check.add_argument("--target", required=True, type=_url, metavar="URL",
                       help="the service to hold the sandbox against (the vendor's hosted sandbox, or any URL)")
    check.add_argument("--family", choices=("legacy", "new"), default="legacy",
                       help="legacy (/api/v1, default) or new (/oneshot/api/v1)")
    signing_in = check.add_mutually_exclusive_group()
    signing_in.add_argument("--token", default=None, metavar="T", help="the target's API token")
    signing_in.add_argument("--rao", type=_rao, default=None, metavar="USER:PASS:PIN",
                            help="the target's RAO credentials instead of a token")
    check.add_argument("--otp-from", default="sandbox-control", metavar="sandbox-control|prompt|CODE",
                       help="where the target's OTPs come from: its /_mock/sms (a sandbox; the default), a prompt "
                            "(the code the phone received), or a fixed CODE")
    check.add_argument("--phone", default="+34600000000", metavar="NUMBER",
                       help="the phone of the flows' signers on the target, where its OTPs go (default +34600000000)")
    check.add_argument("--report", type=Path, default=None, metavar="FILE",
                       help="write a JSON report to FILE and an HTML one beside it (FILE with .html)")

    proxy = commands.add_parser("proxy", help="pass calls through to an upstream and record them as a scenario "
                                              "and a HAR file")
    proxy.add_argument("--upstream", required=True, type=_url, metavar="URL",
                       help="where calls go (the vendor's sandbox)")
    proxy.add_argument("--record", required=True, type=Path, metavar="DIR",
                       help="where the recording goes: DIR/recording.yaml (a scenario) and DIR/session.har")
    proxy.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    proxy.add_argument("--port", type=_port, default=8090, help="TCP port to listen on (default 8090)")

    for name, text in (("export", "write a namespace of a data dir to FILE (a zip; the sandbox stopped)"),
                       ("import", "replace a namespace of a data dir with FILE's (the sandbox stopped)")):
        moving = commands.add_parser(name, help=text)
        moving.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
        moving.add_argument("--namespace", default=None, metavar="NAME",
                            help="the namespace (default: the default one; for import, the archive's own)")
        moving.add_argument("file", type=Path, metavar="FILE")
    return parser, serve


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """The command line; options of ``serve`` default to their ``ONESHOT_MOCK_*`` variables in ``environ``."""
    parser, serve = build_parsers()
    args = parser.parse_args(argv)
    # Only ``serve`` reads the variables (a bad one must not break generate-pki); parse again once they
    # are defaults, so that flags still win.
    if args.command == "serve" and env_options.apply(serve, environ):
        args = parser.parse_args(argv)
    return args


def _move_state(args: argparse.Namespace) -> str | None:
    """``export``/``import``: None once done, else the message to exit with."""
    from mock_server.domain.tenancy import NamespaceRefused, check_name
    from mock_server.storage import archive
    from mock_server.storage.persistence import DataDir
    from mock_server.storage.schema import DataDirError

    try:
        namespace = check_name(args.namespace) if args.namespace is not None else None
        if args.command == "import":
            found = archive.unpack(args.file.read_bytes())
            if not args.data_dir.is_dir():
                return f"--data-dir {args.data_dir}: not a data dir"
            DataDir(args.data_dir).import_namespace(found.namespace if namespace is None else namespace,
                                                    found.tables, found.blobs)
            print(f"{found.requests} request(s) imported into namespace {namespace or found.namespace or '(default)'!r}"
                  f" of {args.data_dir}")
            return None
        if not (args.data_dir / "state.sqlite3").is_file():
            return f"--data-dir {args.data_dir}: not a data dir"
        namespace = namespace or ""
        tables, blobs = DataDir(args.data_dir).export_namespace(namespace)
        if not tables:
            return f"no namespace {namespace!r} in {args.data_dir}"
        taken = archive.Archive(namespace, tables, blobs)
        args.file.write_bytes(archive.pack(taken))
        print(f"{taken.requests} request(s) of namespace {namespace or '(default)'!r} written to {args.file}")
        return None
    except (OSError, archive.ArchiveError, DataDirError, NamespaceRefused) as fault:
        return str(fault)


def _conformance(args: argparse.Namespace) -> int:
    """``conformance``: 0 when no step differs, 1 when some do."""
    import asyncio

    from mock_server.conformance.run import Options, TargetUnreachable, run

    options = Options(args.target, args.family, args.token, args.rao, args.otp_from, args.phone)
    try:
        report = asyncio.run(run(options))
    except TargetUnreachable as fault:
        _fail(str(fault))
    for line in report.lines():
        _print(line)
    if args.report is not None:
        try:
            written = report.write(args.report)
        except OSError as fault:
            _fail(f"--report {args.report}: {fault.strerror or fault}")
        _print(f"report: {written[0]} and {written[1]}")
    return 1 if report.differing else 0


def _proxy(args: argparse.Namespace) -> None:
    """``proxy``: serve until stopped; the recording is complete after each call."""
    from aiohttp import web

    from mock_server.conformance.proxy import HAR_FILE, SCENARIO_FILE, Recording, create_proxy

    upstream = args.upstream.rstrip("/")
    app = create_proxy(upstream, Recording(args.record, upstream))

    def listening(_: str) -> None:
        _print(f"proxy on http://{args.host}:{args.port} to {upstream}, recording to "
               f"{args.record / SCENARIO_FILE} and {args.record / HAR_FILE}")

    try:
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=listening)
    except OSError as fault:
        _fail(f"cannot listen on {args.host}:{args.port}: {fault.strerror or fault}")


def serve_config(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Config:
    """The configuration ``oneshot-mock serve ARGV`` runs with, under ``environ`` (default: this process's)."""
    return _config(parse_args(["serve", *argv], os.environ if environ is None else environ))


def _seed(args: argparse.Namespace) -> int:
    """``--seed``; without it the default, unless an admin token guards the sandbox: the default
    seed's OTPs could then be foretold by replaying the same calls on any other sandbox."""
    if args.seed is not None:
        return args.seed
    return secrets.randbits(48) if args.admin_token else Config.seed


def _config(args: argparse.Namespace) -> Config:
    return Config(
        host=args.host, port=args.port, seed=_seed(args), otp=args.otp, otp_ttl_seconds=args.otp_ttl,
        otp_resend_seconds=args.otp_resend, pki_dir=args.pki_dir, seed_file=args.seed_file,
        log_format=args.log_format, workers=max(args.workers, 1), one_shot_key=args.one_shot_key,
        signing_priority=args.signing_priority,
        max_upload_mb=args.max_upload_mb,
        public_url=args.public_url, ra_webhooks=tuple(args.ra_webhook), webhook_format=args.webhook_format,
        webhook_secret=args.webhook_secret, webhook_retry_scale=args.webhook_retry_scale,
        videoid_auto_complete=args.videoid_auto_complete, clock_start=args.clock_start,
        scenarios=tuple(args.scenario), admin_token=args.admin_token, max_log_entries=args.max_log_entries,
        control_api=not args.no_control_api, max_namespaces=max(args.max_namespaces, 1),
        data_dir=args.data_dir, retain_requests=args.retain_requests, retain_for=args.retain_for,
        header_timeout=args.header_timeout, body_timeout=args.body_timeout, idle_timeout=args.idle_timeout,
        body_deadline=args.body_deadline,
    )


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: what was asked cannot be done as given."""
    print(f"oneshot-mock: {message}", file=sys.stderr)
    sys.exit(2)


def _print(text: str) -> None:
    """``text`` on stdout; a reader that went away (``| head``) ends the command quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script."""
    args = parse_args(argv, os.environ)
    if args.command == "fake-evidences":
        from mock_server.domain.fakes import fake_evidences

        try:
            evidences = fake_evidences(args.seed, args.locale)
        except AttributeError:  # Faker's answer to a locale it does not know
            _fail(f"--locale {args.locale}: not a locale Faker knows (e.g. es_ES, en_GB, pt_BR)")
        _print(json.dumps(evidences, indent=2, ensure_ascii=False))
        return
    if args.command == "error-scenarios":
        import yaml

        from mock_server.domain.errors import CATALOGUE
        from mock_server.domain.scenarios import error_scenario

        args.directory.mkdir(parents=True, exist_ok=True)
        for key in CATALOGUE:
            (args.directory / f"{key}.yaml").write_text(yaml.safe_dump(error_scenario(key), sort_keys=False))
        print(f"{len(CATALOGUE)} scenario files written to {args.directory}")
        return
    if args.command == "generate-pki":
        from mock_server.pki.generate import generate_test_pki

        try:
            generate_test_pki(args.directory, force=args.force)
        except OSError as fault:
            _fail(str(fault) if fault.strerror is None else f"{args.directory}: {fault.strerror}")
        print(f"test PKI written to {args.directory}")
        return

    if args.command == "tail":
        from mock_server.testing.tail import TailError, events_url, follow

        try:
            follow(events_url(args.url, args.pk, args.kind), _print, namespace=args.namespace,
                   admin_token=args.admin_token, count=args.count)
        except TailError as fault:
            _fail(str(fault))
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a tail ends
        return

    if args.command == "conformance":
        sys.exit(_conformance(args))

    if args.command == "proxy":
        _proxy(args)
        return

    if args.command in ("export", "import"):
        refused = _move_state(args)
        if refused:
            _fail(refused)
        return

    config = _config(args)
    configure_logging(config.log_format)
    from mock_server.domain.scenarios import ScenarioError
    from mock_server.domain.seedfile import SeedFileError
    from mock_server.server import gcpolicy
    from mock_server.server.app import create_app
    from mock_server.server.loop import event_loop_factory
    from mock_server.server.serving import run
    from mock_server.server.slow_clients import Deadlines
    from mock_server.storage.schema import DataDirError

    try:
        app = create_app(config)
    except (SeedFileError, ScenarioError, DataDirError, OSError) as fault:
        _fail(str(fault))
    log = logging.getLogger("mock_server")
    if args.seed is None and config.admin_token:
        log.info("seed %d drawn at random (--admin-token without --seed): pass --seed %d to replay this run",
                 config.seed, config.seed)
    if config.control_api and not config.admin_token and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the control API (/_mock/) is open to the network on %s: set --admin-token or "
                    "--no-control-api", config.host)
    gcpolicy.install()

    def listening() -> None:
        log.info("oneshot-mock %s on http://%s:%s", __version__, config.host, config.port)

    try:
        run(app, Deadlines.of(config), config.host, config.port, listening, event_loop_factory()())
    except OSError as fault:  # the port is taken, or the address is not this machine's
        _fail(f"cannot listen on {config.host}:{config.port}: {fault.strerror or fault}")
