"""The crash soak: SIGKILL ``cairn-node`` processes at random moments and prove nothing was lost or corrupted."""
