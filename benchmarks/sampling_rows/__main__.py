from benchmarks.sampling_rows.run import main

main()
