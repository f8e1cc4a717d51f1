from benchmarks.reranker_slice.run import main

main()
