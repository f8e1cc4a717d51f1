from benchmarks.precision.run import main

main()
