"""A componentize-py app with an `async func` export (see world.wit).

componentize-py runs the module's top level during its own
pre-initialization; `component_init` is the app's init on top of that, which
`component-init` runs at build time. `describe` and `describe_async` only
read what it left behind.
"""

import asyncio

import wit_world

state = {"calls": 0}


def _collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def _build():
    table = {n: _collatz_steps(n) for n in range(1, 20001)}
    longest = max(table, key=lambda n: (table[n], -n))
    total = sum(table.values())
    return {"table": table, "longest": longest, "total": total}


def _describe():
    if "table" not in state:
        return f"calls={state['calls']}"
    table = state["table"]
    longest = state["longest"]
    return (
        f"calls={state['calls']} table={len(table)} total={state['total']} "
        f"longest={longest}:{table[longest]} t27={table[27]}"
    )


class WitWorld(wit_world.WitWorld):
    def component_init(self) -> None:
        state["calls"] += 1
        state.update(_build())

    def describe(self) -> str:
        return _describe()

    async def describe_async(self) -> str:
        # A trip through componentize-py's event loop before answering.
        await asyncio.sleep(0)
        return _describe()

    def init_calls(self) -> int:
        return state["calls"]
