from watchcentre.cli import main

raise SystemExit(main())
