from benchmarks.pick_baselines.run import main

main()
