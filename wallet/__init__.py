"""The cairn-wallet CLI: encrypted keystore, addresses, balance, send, history and chain verification."""
