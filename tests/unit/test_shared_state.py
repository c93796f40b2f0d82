"""The indexes' state a supervisor shares with its workers (api/shared_state.py)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from adclick.api.index_server import sharing
from adclick.api.shared_state import SharedState


@given(st.lists(st.none() | st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)), min_size=1))
def test_a_worker_reads_the_state_the_supervisor_published_last(
    states: list[tuple[int, int] | None],
) -> None:
    with tempfile.TemporaryDirectory() as directory:  # one per example
        path = Path(directory) / "state"
        writer = SharedState.create(path)
        reader = SharedState(path, writable=False)
        assert reader.read() is None  # before the window index's first load
        for state in states:
            writer.publish(state)
            assert reader.read() == state
        writer.close()
        reader.close()


def test_a_read_never_mixes_two_states(tmp_path: Path) -> None:
    """Read while another thread publishes: each state read is one that was published
    whole (window and hour generations of the same state), never a mix of two."""
    writer = SharedState.create(tmp_path / "state")
    reader = SharedState(tmp_path / "state", writable=False)
    done = threading.Event()

    def publish() -> None:
        for generation in range(1, 20_000):
            writer.publish((generation, -generation % 1_000_003))
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    reads = 0
    while not done.is_set():
        state = reader.read()
        assert state is None or state[1] == -state[0] % 1_000_003, state
        reads += 1
    thread.join()
    assert reads > 100 and reader.read() == (19_999, -19_999 % 1_000_003)


def test_a_state_read_before_a_newer_one_is_never_published_after_it(tmp_path: Path) -> None:
    """The window thread reads (5, 0) and is held; the hour thread's (5, 1) comes in
    meanwhile. Published last must be (5, 1): workers seeing (5, 0) again would send
    answers kept before the hour changed."""
    shared = SharedState.create(tmp_path / "state")
    current = [(5, 0)]
    held, go = threading.Event(), threading.Event()

    class Queries:
        def memory_state(self) -> tuple[int, int]:
            read = current[0]
            if threading.current_thread().name == "window":
                held.set()
                go.wait(5)
            return read

    share = sharing(shared, Queries())
    window = threading.Thread(target=share, name="window")
    window.start()
    held.wait(5)
    current[0] = (5, 1)
    hours = threading.Thread(target=share, name="hours")
    hours.start()
    hours.join(1)  # unlocked, it would publish (5, 1) now, and the window thread after it
    go.set()
    window.join(5)
    hours.join(5)
    assert shared.read() == (5, 1)
