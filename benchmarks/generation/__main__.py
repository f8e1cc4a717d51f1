from benchmarks.generation.run import main

raise SystemExit(main())
