from benchmarks.pair_batching.run import main

main()
