from benchmarks.pool_draws.run import main

main()
