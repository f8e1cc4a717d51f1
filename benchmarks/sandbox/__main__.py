from benchmarks.sandbox.run import main

raise SystemExit(main())
