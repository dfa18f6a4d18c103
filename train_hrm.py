"""Distil the HRM from the experience store. `python train_hrm.py --help` lists the options."""

import sys

from aegis.distill import main

if __name__ == "__main__":
    sys.exit(main())
