"""A Cairn peer: JSON API, mempool, miner, gossip and sync over HTTP (Flask app served by waitress)."""
