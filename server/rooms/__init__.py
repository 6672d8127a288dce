"""Rooms: persistent state plus who is connected, the registry that restores and evicts them, and
the debounced saver that writes them."""
