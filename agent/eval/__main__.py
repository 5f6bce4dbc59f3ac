import sys

from agent.eval.cli import main

sys.exit(main())
