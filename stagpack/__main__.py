from stagpack.app.cli import main

raise SystemExit(main())
