import sys

from lifeline import die_with_parent

die_with_parent()  # first: an orphan server must never start serving

from servers.cli import main  # noqa: E402

sys.exit(main())
