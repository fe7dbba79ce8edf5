'use strict';
// A module of the application, required relative to the script.
function primesBelow(n) {
  const sieve = new Uint8Array(n).fill(1);
  sieve[0] = 0;
  sieve[1] = 0;
  for (let i = 2; i * i < n; i++) if (sieve[i]) for (let j = i * i; j < n; j += i) sieve[j] = 0;
  const out = [];
  for (let i = 0; i < n; i++) if (sieve[i]) out.push(i);
  return out;
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], max: s[s.length - 1], sum: s.reduce((a, b) => a + b, 0) };
}

module.exports = { primesBelow, summary };
