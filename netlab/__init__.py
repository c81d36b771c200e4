"""netlab: Cairn nodes in separate Linux network namespaces, behind a link emulator with delay, loss and partitions."""
