from specweave_ray.cli import main

raise SystemExit(main())
