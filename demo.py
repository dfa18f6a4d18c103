"""The Aegis REPL on the experience store. `python demo.py --help` lists the options; `help` inside, the commands."""

import sys

from aegis.repl import main

if __name__ == "__main__":
    sys.exit(main())
