"""``python -m mock_server.bench``: throughput, latency and memory of a sandbox under concurrent clients.

One run measures, against a sandbox it starts (or ``--url``):

- ``hello``: ``GET /api/v1/hello`` throughput against a bare aiohttp app with one hello handler
  on the same machine, with the same clients, in alternating rounds;
- ``classic``, ``hash`` and ``async``: complete flows (create, upload, OTP read from the SMS
  outbox, sign, download, delete the documents) driven by concurrent clients for a fixed time;
- ``sequential``: classic flows one after the other from one client, for the slowest signature;
- ``mixed``: the latency of the non-signing endpoints for many paced clients while classic
  flows keep the signing workers busy;
- ``noisy``: the same beside two CPU-bound busy loops in the sandbox's session, as in a CI job;
- the server's memory (RSS, sandbox process and signing workers) before the first flow and
  after the last, topping up with hash flows until enough flows have run;
- ``xdist``: a client project's seven tests on the ``oneshot_mock`` fixture, serially and with
  pytest-xdist's ``-n 2``.

Every flow signs as its own signer with its own document, drawn from ``--seed``
(:mod:`mock_server.bench.inputs`). It prints a table, or JSON with ``--json``, and the targets
each figure is held to.
"""
