"""The Cairn peer node: consensus core served over HTTP, with mempool, miner, gossip and sync."""

VERSION = "0.1.0"
PROTOCOL_VERSION = 2  # 2: POST /p2p/transactions fetches many transactions at once
