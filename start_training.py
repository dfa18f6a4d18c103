"""Run the autonomous agent until Ctrl-C or a bound. `python start_training.py --help` lists the options."""

import sys

from aegis.agent_cli import main

if __name__ == "__main__":
    sys.exit(main())
