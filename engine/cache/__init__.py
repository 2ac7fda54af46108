"""The semantic cache in front of any backend: a prompt that means the same as a stored one, in the
same scope, gets the stored answer, unless a lexical guard sees a difference that embeddings miss."""
