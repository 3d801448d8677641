"""``mock_server.client``, the public import path of :class:`ControlClient` (it lives in
:mod:`mock_server.testing.client`)."""

from mock_server.testing.client import ControlClient, ControlError, JournalMismatch, WaitTimeout

__all__ = ["ControlClient", "ControlError", "JournalMismatch", "WaitTimeout"]
