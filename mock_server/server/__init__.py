"""The server's runtime: the application and its middlewares, the command line, configuration, the
event loop, signing worker processes, the garbage collector's policy, logs, slow-client deadlines."""
