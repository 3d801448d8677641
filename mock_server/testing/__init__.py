"""What a client project's tests use: the pytest plugin and its fixture, ``ControlClient``, the
pytest-xdist sharing of one sandbox, and ``oneshot-mock tail``."""
