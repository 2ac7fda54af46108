"""Pure logic of the engine facade: incremental detokenization and stop-string hold-back."""
from engine.engine import IncrementalDetokenizer, _held_back


def test_incremental_detokenizer_waits_for_whole_characters():
    # a toy byte-level vocabulary: ids are bytes
    def decode(ids):
        return bytes(ids).decode("utf-8", errors="replace")

    d = IncrementalDetokenizer(decode)
    out = [d.add(b) for b in "né€".encode()]
    assert "".join(out) == "né€"
    # the two bytes of é and three of € only come out once complete
    assert out[1] == "" and out[2] == "é" and out[3] == "" and out[4] == "" and out[5] == "€"


def test_held_back_is_longest_stop_prefix_at_the_end():
    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["world"]) == 0
    assert _held_back("ab", ["abc", "b"]) == 2
