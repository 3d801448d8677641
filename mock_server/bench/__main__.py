from mock_server.bench.run import main

main()
