"""Deprecated: the pytest plugin is :mod:`mock_server.testing.pytest_plugin` (pytest loads it by its
entry point; ``-p mock_server.testing.pytest_plugin`` names it)."""

import warnings

warnings.warn("mock_server.pytest_plugin moved to mock_server.testing.pytest_plugin", DeprecationWarning,
              stacklevel=2)

from mock_server.testing.pytest_plugin import *  # noqa: E402,F403
