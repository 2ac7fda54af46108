"""The torch engine: continuous batching over a paged KV cache with prefix caching and speculative
decoding, nano-vllm style (Sequence, BlockManager, Scheduler, ModelRunner); the Llama family."""
