from benchmarks.reranker_seeds.run import main

main()
