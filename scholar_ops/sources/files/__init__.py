"""Backing up and restoring directory trees: uploaded files and configuration directories.

``backup_files`` walks a tree (never following symlinks, in a deterministic
order) and stores every regular file as a streamed entry, directories and
symlinks as metadata-only entries, with permissions, mtimes and owners. An
incremental backup does not read files whose size and mtime match the latest
snapshot of the same target. ``restore_files`` rebuilds the tree (or a subset)
and verifies every file's sha256.
"""
