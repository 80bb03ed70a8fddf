# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry span exporter for LumiqTrace."""

from opentelemetry_exporter_lumiqtrace.version import __version__

__all__ = ["__version__"]
