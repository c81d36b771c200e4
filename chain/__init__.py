"""Cairn's consensus core: blocks, transactions, proof of work, validation, fork choice and storage.

Imports nothing web- or CLI-related, so a node, a wallet and a test can all use it.
"""
