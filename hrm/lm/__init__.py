"""HRM × LM: our HRM as the encoder of a small decoder language model (arithmetic and text data, train, generate).

    python -m hrm.lm.train --dry_run 1
    python -m hrm.lm.generate --prompt "What is 12 + 7?" --dataset synthetic
"""
