/**
 * Node flags for the long-running nimbus-ha processes (`run`, `witness`). The `nimbus-ha` executable's
 * first line passes them (`#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node ...`), and so do the Dockerfile's
 * wrapper and the test/demo cluster fixture; test/unit/node-flags.test.ts keeps the three in step.
 *
 * `--max-semi-space-size=2`: V8 grows the young generation up to 16 MB per semi-space when a process
 * allocates in bursts (a repository pass, a status scrape), and keeps those pages. An idle sidecar's
 * young objects are short-lived heartbeat and status messages, so 2 MB semi-spaces cost nothing
 * measurable in CPU and keep a head-node sidecar's peak RSS about 30-40 MB lower (docs/benchmarks.md).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * Environment of the same processes, set by the executable's first line (`env -S NAME=value node ...`).
 *
 * `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates (libuv's pool, V8's helpers) an arena of
 * its own and keeps their freed pages; two arenas kept a head-node standby's peak RSS 6-9 MB lower in
 * side-by-side runs, with CPU unchanged within noise (docs/benchmarks.md).
 *
 * `MALLOC_MMAP_THRESHOLD_=65536`: a 64 KiB buffer or larger (a stream's chunk: reading and shipping a
 * 16 MB WAL segment allocates 512 of them) gets pages of its own, given back to the system when it is
 * freed. Without it glibc raises the threshold once a large block was freed and serves such buffers from
 * its arenas, whose freed space it keeps while anything above it is live: a primary's anonymous memory
 * stood 20-24 MB higher for 20-60 s after a segment was shipped, which swamped the soak's growth figure
 * (docs/benchmarks.md, soak). Setting it also turns glibc's dynamic threshold off. Other C libraries
 * ignore both.
 */
export const PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536' };
