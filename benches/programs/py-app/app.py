"""The Python workload of `cargo bench --bench pre_init`.

componentize-py runs the module's top level (the imports) during its own
pre-initialization. `component_init` is the app's init on top of that: it
builds tables, and the bench pre-initializes the component again with it.
`probe` and `lookup` only read what it left behind.
"""

import json
import re
from collections import Counter

import wit_world

SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze"]
PATTERNS = [r"^(ka|lo)+$", r"(mi|nu){2,}", r"ze$", r"^[a-z]{4,8}$"]

state = {}


def _xorshift(seed):
    while True:
        seed ^= (seed << 13) & 0xFFFFFFFF
        seed ^= seed >> 17
        seed ^= (seed << 5) & 0xFFFFFFFF
        yield seed


def _build():
    limit = 1 << 18
    composite = bytearray(limit)
    primes = []
    for i in range(2, limit):
        if not composite[i]:
            primes.append(i)
            composite[i * i :: i] = b"\x01" * len(range(i * i, limit, i))
    rng = _xorshift(0x9E3779B9)
    words = {}
    for i in range(20000):
        n = 2 + next(rng) % 4
        word = "".join(SYLLABLES[next(rng) % len(SYLLABLES)] for _ in range(n))
        words[word] = primes[i % len(primes)]
    compiled = [re.compile(p) for p in PATTERNS]
    counts = [sum(1 for w in words if r.search(w)) for r in compiled]
    initials = Counter(w[0] for w in words)
    config = json.loads(json.dumps({"primes": primes[:1000], "initials": sorted(initials)}))
    return {"primes": primes, "words": words, "counts": counts, "config": config}


def _checksum():
    if not state:
        return 0
    total = len(state["primes"]) + len(state["words"]) + len(state["config"]["primes"])
    for count in state["counts"]:
        total = (total * 31 + count) & 0xFFFFFFFF
    for word, value in state["words"].items():
        if len(word) == 6:
            total = (total * 31 + value) & 0xFFFFFFFF
    return total


class WitWorld(wit_world.WitWorld):
    def component_init(self) -> None:
        state.update(_build())
        # Computed here: `probe` must not do init's work.
        state["checksum"] = _checksum()

    def probe(self) -> int:
        return (state.get("checksum", 0) + len(state.get("words", ()))) & 0xFFFFFFFF

    def lookup(self, word: str):
        return state.get("words", {}).get(word)
