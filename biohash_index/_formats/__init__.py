"""Every file format of the library, one module each (docs/format.md documents them all):

| format (name, version)            | module      | written by                                 |
|-----------------------------------|-------------|--------------------------------------------|
| "biohash-index" 2 (reads 1, 2)    | index       | a generation: ``BioHashIndex.save``,       |
|                                   | index_dir   | ``serialize_index``, pickle                |
| "biohash-index-refine" 2 (1, 2)   | refine      | ``BioHashIndexRefine.save``                |
| "biohash-store" 1                 | store       | ``BioHashStore.save`` / ``to_bytes``       |
| "biohash-sharded-index" 2 (1, 2)  | shards      | ``dask.ShardedIndex``                      |

Each module encodes a state object into bytes or files, and decodes bytes or a path through
the one hardened reader (``_io``) into a checked state object; every decode error is a
``BioHashFormatError`` naming the file and the part. The modules know the states, not the
objects built from them (``BioHashIndex``, ``BioHashIndexRefine``, ``BioHashStore``).
Nothing is imported here, so that each module is imported only by those that need it.
"""
