'use strict';
// A worker thread: counts the primes in [lo, hi), records the count in a
// shared Int32Array slot with Atomics, and posts the result.
const { parentPort, workerData } = require('worker_threads');
const { lo, hi, slot, shared } = workerData;
const counters = new Int32Array(shared);
let count = 0;
let last = 0;
for (let n = Math.max(lo, 2); n < hi; n++) {
  let prime = true;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
  if (prime) { count++; last = n; }
}
Atomics.store(counters, slot, count);
Atomics.notify(counters, slot);
parentPort.postMessage({ count, last });
