"""Join codes: six characters a person can read out, so a room needs no spelling to be found.

The alphabet leaves out what looks alike (0/O, 1/I/L) and, as Crockford's base 32 does, U (fewer
accidental words). 30^6 is about 7 * 10^8 codes: a server of 10,000 rooms draws a taken one once in
70,000 creations, and then draws again (storage refuses a taken code).
"""

from __future__ import annotations

import random

from storage import Storage

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 6
# Typed codes may be grouped ("K7F M2Q", "k7f-m2q").
_SEPARATORS = str.maketrans("", "", " -\u00a0")


def new_join_code(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(LENGTH))


def read_join_code(text: str) -> str | None:
    """The join code ``text`` spells (in any case, grouped or not), or None when it spells none."""
    code = text.translate(_SEPARATORS).upper()
    if len(code) == LENGTH and all(char in ALPHABET for char in code):
        return code
    return None


async def room_named(storage: Storage, text: str) -> str:
    """The name of the room ``text`` stands for, wherever people give a room: a stored room's name,
    else the name of the room whose join code it spells, else ``text`` itself (no such room)."""
    code = read_join_code(text)
    if code is None or await storage.has_room(text):
        return text
    found = await storage.room_of_join_code(code)
    return text if found is None else found
