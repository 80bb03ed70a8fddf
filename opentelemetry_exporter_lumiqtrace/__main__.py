# SPDX-License-Identifier: Apache-2.0
"""Command line: ``python -m opentelemetry_exporter_lumiqtrace check``.

check    read the configuration as the exporter does, send one test event, explain the answer
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opentelemetry_exporter_lumiqtrace",
        description="Tools for opentelemetry-exporter-lumiqtrace.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "check",
        help="show the configuration from LUMIQTRACE_* variables, send one test event and explain the answer",
        description="Reads the configuration exactly as OTEL_TRACES_EXPORTER=lumiqtrace does, tells whether "
        "opentelemetry-instrument would configure the SDK, sends one test event and explains the answer. "
        "Exit code 0: delivered; 1: not delivered; 2: the setup cannot work as it stands.",
    )
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help()
        return 2
    from opentelemetry_exporter_lumiqtrace.check import run_check

    return run_check()


if __name__ == "__main__":
    sys.exit(main())
