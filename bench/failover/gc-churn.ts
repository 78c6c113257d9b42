/**
 * `bench:failover --gc-pressure`: loaded into each sidecar with `node --import`, a heap-churning load in
 * the sidecar's own event loop, so its heartbeats and lease renewals compete with the garbage collector:
 * about 20 MB/s of short-lived objects (scavenges) and a 32 MiB set of long-lived ones replaced a slice
 * at a time (old-generation growth, so mark-compact cycles run too). Its timers are unref'd: it never
 * keeps a sidecar alive.
 */
const RETAINED_SLOTS = 256;
const SLOT_BYTES = 128 * 1024; // 256 × 128 KiB = 32 MiB held
const retained: unknown[] = new Array(RETAINED_SLOTS).fill(null);
let slot = 0;
let sink = 0;

function churn(): void {
  // Short-lived: ~200 KB of small objects per 10 ms tick.
  let garbage: { i: number; s: string }[] = [];
  for (let i = 0; i < 4000; i++) garbage.push({ i, s: `x${i}` });
  sink += garbage.length;
  garbage = [];
  // Long-lived: replace one slot per tick (the whole set turns over every ~2.5 s).
  const arr = new Array<number>(SLOT_BYTES / 8);
  for (let i = 0; i < arr.length; i += 64) arr[i] = i;
  retained[slot] = arr;
  slot = (slot + 1) % RETAINED_SLOTS;
}

setInterval(churn, 10).unref();
process.on('exit', () => {
  if (sink < 0) console.log(sink); // keeps the allocations observable to the optimizer
});
