/**
 * Node flags the long-running servers (daemon, registry, beacon, rendezvous) run with; their
 * executables' `#!` lines carry the same.
 *
 * `--no-memory-reducer`: V8's memory reducer shrinks the heap with a few full collections once a
 * process goes quiet after a burst of work. Those collections release the object shapes that the
 * optimised code of the connection path was compiled against, and V8 throws that code away ("weak
 * objects"): the next requests run unoptimised until they have been made often enough again, which
 * at a few requests a second takes minutes. The price of the flag is a heap that keeps its working
 * size while idle.
 *
 * `--initial-old-space-size=64`: a node's live heap is ~12 MB, and V8 sets the next full
 * collection's trigger a fixed step above it, about one young generation (16 MB) ahead. A bulk
 * transfer promotes the 60 KiB segments in flight (held until acknowledged) with their buffers, so
 * at that trigger it ran a full marking every ~10 MiB moved, a quarter of the CPU of each node.
 * The flag keeps the trigger at 64 MB or more: a few full collections per 300 MiB instead of
 * dozens. An idle daemon's resident size does not change (young collections still free what
 * dies young); under load the old generation may hold up to 64 MB before it is collected.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer', '--initial-old-space-size=64'];
