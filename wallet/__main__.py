"""``python -m wallet``: the same as the ``cairn-wallet`` command."""

from wallet.cli import main

main()
