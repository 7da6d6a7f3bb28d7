"""The Backends workspace: per-node op support and scores, constraints, pins, graph colouring."""
