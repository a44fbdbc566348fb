"""vault: the encrypted, deduplicated backup store.

One concept per module: `storage` (where objects live), `crypto` (keys and
sealing), `chunker` (content-defined chunking), `pack` (blob containers),
`index` (chunk locations), `snapshot` (manifests), `lock` (store-level locks),
`repository` (opening a store), `archiver` (writing a backup), `restorer`
(reading one back), `checker` (verifying), `prune` (retention). The format is
specified in docs/design.md. Nothing here imports Prefect.
"""
