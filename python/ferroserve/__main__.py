from ferroserve.cli import main

raise SystemExit(main())
