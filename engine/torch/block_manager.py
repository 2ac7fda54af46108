"""Paged KV cache bookkeeping: fixed-size blocks, ref-counted, and a prefix cache keyed by chained
block hashes (hash of parent key + the block's token ids; tokens are compared again on a hit)."""
from __future__ import annotations

from engine.torch.prefix_inspector import PrefixInspector
from engine.torch.sequence import Sequence


class Block:
    __slots__ = ("block_id", "ref_count", "hash", "token_ids")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_count = 0
        self.hash = -1  # -1: not a full, registered block
        self.token_ids: tuple[int, ...] = ()


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        assert num_blocks > 0 and block_size > 0
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        # insertion-ordered set: freed blocks go to the end, allocation takes the oldest, so a
        # released prefix stays findable as long as possible
        self.free_block_ids: dict[int, None] = dict.fromkeys(range(num_blocks))
        self.hash_to_block_id: dict[int, int] = {}
        # explains each admitted prompt's hits and first miss (RequestMetrics.prefix_report)
        self.inspector = PrefixInspector(block_size) if enable_prefix_caching else None

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_block_ids)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self.free_block_ids)

    @staticmethod
    def compute_hash(parent: int, token_ids: tuple[int, ...]) -> int:
        return hash((parent, token_ids))

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # ---- prefix cache ----
    def match_prefix(self, seq: Sequence) -> list[int]:
        """Ids of cached blocks holding a prefix of seq. The last token is never taken from the
        cache, so the step that follows still has a token to compute logits for."""
        if not self.enable_prefix_caching:
            return []
        bs = self.block_size
        hits: list[int] = []
        parent = -1
        for i in range((seq.num_tokens - 1) // bs):
            tokens = tuple(seq.token_ids[i * bs : (i + 1) * bs])
            h = self.compute_hash(parent, tokens)
            bid = self.hash_to_block_id.get(h)
            if bid is None or self.blocks[bid].token_ids != tokens:
                break
            hits.append(bid)
            parent = h
        return hits

    def can_allocate(self, seq: Sequence, num_new_tokens: int, hits: list[int] = ()) -> bool:
        have = len(seq.block_table) + len(hits)
        computed = seq.num_computed_tokens + len(hits) * self.block_size
        need = self.blocks_for(computed + num_new_tokens) - have
        reclaimed = sum(1 for b in hits if self.blocks[b].ref_count == 0)  # cached but free
        return need <= self.num_free_blocks - reclaimed

    def allocate_prefix(self, seq: Sequence, hits: list[int]) -> None:
        assert not seq.block_table and seq.num_computed_tokens == 0
        if self.inspector is not None and not seq.scheduled_once:  # first admission, not a re-admission
            seq.request.metrics.prefix_report = self.inspector.admit(
                seq.seq_id, seq.token_ids[: seq.num_prompt_tokens], hits)
        for bid in hits:
            block = self.blocks[bid]
            if block.ref_count == 0:
                del self.free_block_ids[bid]
            block.ref_count += 1
            seq.block_table.append(bid)
            seq.block_hashes.append(block.hash)
        seq.num_computed_tokens = len(hits) * self.block_size

    def allocate(self, seq: Sequence, num_new_tokens: int) -> None:
        """Give seq enough blocks for its computed tokens plus num_new_tokens more."""
        need = self.blocks_for(seq.num_computed_tokens + num_new_tokens) - len(seq.block_table)
        assert need <= self.num_free_blocks, "allocate() without can_allocate()"
        for _ in range(need):
            seq.block_table.append(self._take_free_block())

    def _take_free_block(self) -> int:
        bid = next(iter(self.free_block_ids))
        del self.free_block_ids[bid]
        block = self.blocks[bid]
        if block.hash != -1 and self.hash_to_block_id.get(block.hash) == bid:
            del self.hash_to_block_id[block.hash]  # evicted: its prefix is no longer findable
        block.hash, block.token_ids, block.ref_count = -1, (), 1
        return bid

    def free(self, seq: Sequence) -> None:
        # release tail blocks first so they are reused first; shared prefixes outlive them
        for bid in reversed(seq.block_table):
            block = self.blocks[bid]
            block.ref_count -= 1
            assert block.ref_count >= 0
            if block.ref_count == 0:
                self.free_block_ids[bid] = None
        seq.block_table = []
        seq.block_hashes = []
        seq.num_computed_tokens = 0

    def trim(self, seq: Sequence) -> None:
        """Free the blocks past seq's computed tokens (speculative decoding's rollback). They were
        taken for drafts in this step, never registered, so they go back as plain free blocks."""
        keep = self.blocks_for(seq.num_computed_tokens)
        for bid in reversed(seq.block_table[keep:]):
            block = self.blocks[bid]
            assert block.hash == -1, "a block holding rejected tokens was registered"
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free_block_ids[bid] = None
        del seq.block_table[keep:]

    def commit_full_blocks(self, seq: Sequence) -> None:
        """Register the blocks that became full (their KV is now written) in the prefix cache."""
        if not self.enable_prefix_caching:
            return
        bs = self.block_size
        for i in range(len(seq.block_hashes), seq.num_computed_tokens // bs):
            tokens = tuple(seq.token_ids[i * bs : (i + 1) * bs])
            parent = seq.block_hashes[-1] if seq.block_hashes else -1
            h = self.compute_hash(parent, tokens)
            block = self.blocks[seq.block_table[i]]
            block.hash, block.token_ids = h, tokens
            self.hash_to_block_id[h] = block.block_id
            seq.block_hashes.append(h)
