from collections.abc import Sequence

def still(
    clocks: Sequence[int],
    cpus: Sequence[int],
    fds: Sequence[int],
    first: float,
    step: float,
    deadline: float,
    call: int,
) -> tuple[int, float, int, float, tuple[tuple[float, int] | None, ...]]: ...
def progress(call: int, i: int) -> tuple[int, float, tuple[float, int] | None] | None: ...
def poke() -> None: ...
def unpoke() -> None: ...
