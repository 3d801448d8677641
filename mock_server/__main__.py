"""``python -m mock_server`` is the ``oneshot-mock`` command."""

from mock_server.server.cli import main

if __name__ == "__main__":
    main()
