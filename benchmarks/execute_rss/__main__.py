from benchmarks.execute_rss.run import main

raise SystemExit(main())
