/**
 * Node flags the long-running servers (daemon, registry, beacon, rendezvous) run with; their
 * executables' `#!` lines carry the same.
 *
 * V8's memory reducer shrinks the heap with a few full collections once a process goes quiet after
 * a burst of work. Those collections release the object shapes that the optimised code of the
 * connection path was compiled against, and V8 throws that code away ("weak objects"): the next
 * requests run unoptimised until they have been made often enough again, which at a few requests
 * a second takes minutes. The price of the flag is a heap that keeps its working size while idle.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer'];
