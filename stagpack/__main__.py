from stagpack.cli import main

raise SystemExit(main())
