from imds_helpers.cli import main

raise SystemExit(main())
