"""``oneshot-mock conformance``: the documented flows run against a target (the vendor's hosted
sandbox, or any URL) and against an embedded sandbox in the same run, compared step by step.

:mod:`~mock_server.conformance.flows` is what a client does, :mod:`~mock_server.conformance.compare`
says where two answers differ (and which differences are expected: ids, times, certificate bytes),
:mod:`~mock_server.conformance.report` prints and writes what was found, and
:mod:`~mock_server.conformance.run` puts them together.
"""
