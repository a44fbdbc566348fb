"""ChromaDB adapter (engine, no Prefect import): the AI Scholar vector store.

conninfo  ``ChromaSource``: an embedded persistent directory or a Chroma server
dump      ``backup_chroma``: a logical, version-portable export of every collection
          (JSON Lines, embeddings as exact float32), or a physical copy of an
          embedded directory (SQLite online backup + segment files)
restore   ``restore_chroma`` (logical) and ``restore_chroma_physical``, each verified;
          ``verify_chroma`` / ``verify_chroma_physical`` verify a store restored earlier
verify    what verification judges: exact digests and every record (the data), and the
          restored index's recall of exact nearest neighbours (never its exact answers)
physical  the physical copy and its restore (same Chroma version only)

Chroma's own default embedding function downloads a model: this adapter never
embeds anything. Collections are opened with ``embedding_function=None`` and
every record is written back with its stored embedding.
"""
