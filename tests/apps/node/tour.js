// fs/promises, crypto, worker_threads and timers: run natively and in the
// enclave, both runs must print the same lines.
'use strict';
const fsp = require('fs/promises');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const zlib = require('zlib');
const { Worker } = require('worker_threads');
const lib = require('./lib/util');

const section = (name) => console.log('==', name);

async function files() {
  section('fs/promises');
  const readme = await fsp.readFile(path.join(__dirname, 'data', 'notes.txt'), 'utf8');
  console.log(readme.split('\n').filter(Boolean));
  const listing = await fsp.readdir(path.join(__dirname, 'data'), { withFileTypes: true });
  console.log(listing.map((d) => `${d.name}:${d.isDirectory() ? 'dir' : 'file'}`).sort());
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'tour-'));
  console.log('tmpdir under /tmp:', tmp.startsWith('/tmp/tour-'));
  const f = path.join(tmp, 'a', 'b', 'c.txt');
  await fsp.mkdir(path.dirname(f), { recursive: true });
  await fsp.writeFile(f, 'first line\n');
  await fsp.appendFile(f, 'second line\n');
  const st = await fsp.stat(f);
  console.log(st.size, st.isFile(), (await fsp.readFile(f, 'utf8')).split('\n'));
  await fsp.rename(f, path.join(tmp, 'moved.txt'));
  await fsp.copyFile(path.join(tmp, 'moved.txt'), path.join(tmp, 'copy.txt'));
  await fsp.symlink('copy.txt', path.join(tmp, 'link'));
  console.log(await fsp.readlink(path.join(tmp, 'link')), (await fsp.lstat(path.join(tmp, 'link'))).isSymbolicLink());
  const fh = await fsp.open(path.join(tmp, 'bin'), 'w+');
  const buf = Buffer.alloc(100000);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7) & 0xff;
  await fh.write(buf, 0, buf.length, 0);
  const part = Buffer.alloc(10);
  await fh.read(part, 0, 10, 50000);
  await fh.truncate(60000);
  console.log(part.toString('hex'), (await fh.stat()).size);
  await fh.close();
  await fsp.chmod(path.join(tmp, 'copy.txt'), 0o600);
  console.log(((await fsp.stat(path.join(tmp, 'copy.txt'))).mode & 0o777).toString(8));
  console.log((await fsp.readdir(tmp)).sort());
  await fsp.unlink(path.join(tmp, 'link'));
  try {
    await fsp.access(path.join(tmp, 'nope'));
  } catch (e) {
    console.log('access error', e.code);
  }
  const lines = [];
  for await (const line of (await fsp.open(path.join(__dirname, 'data', 'notes.txt'))).readLines()) lines.push(line.length);
  console.log('readLines', lines);
  await fsp.rm(tmp, { recursive: true });
  console.log('removed', !fs.existsSync(tmp));
}

function hashes() {
  section('crypto');
  const data = 'The quick brown fox jumps over the lazy dog';
  for (const alg of ['md5', 'sha1', 'sha256', 'sha512', 'sha3-256']) {
    console.log(alg, crypto.createHash(alg).update(data).digest('hex').slice(0, 32));
  }
  console.log('hmac', crypto.createHmac('sha256', 'key').update(data).digest('base64'));
  const h = crypto.createHash('sha256');
  for (let i = 0; i < 1000; i++) h.update(Buffer.from([i & 0xff, i >> 8]));
  console.log('incremental', h.digest('hex'));
  const r = crypto.randomBytes(32);
  console.log('randomBytes', r.length, !r.equals(crypto.randomBytes(32)));
  const u = crypto.randomUUID();
  console.log('uuid', u.length, u[14]);
  console.log('randomInt in range', [...Array(100)].every(() => { const x = crypto.randomInt(10, 20); return x >= 10 && x < 20; }));
  console.log('pbkdf2', crypto.pbkdf2Sync('pw', 'salt', 1000, 16, 'sha256').toString('hex'));
  console.log('scrypt', crypto.scryptSync('pw', 'salt', 16).toString('hex'));
  const key = crypto.createHash('sha256').update('k').digest();
  const iv = Buffer.alloc(12, 1);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const enc = Buffer.concat([c.update(data), c.final()]);
  const tag = c.getAuthTag();
  const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
  d.setAuthTag(tag);
  console.log('aes-gcm', enc.toString('hex').slice(0, 24), tag.toString('hex'), Buffer.concat([d.update(enc), d.final()]).toString() === data);
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sig = crypto.sign('sha256', Buffer.from(data), privateKey);
  console.log('ecdsa verify', crypto.verify('sha256', Buffer.from(data), publicKey, sig));
  console.log('gzip', zlib.gunzipSync(zlib.gzipSync(Buffer.from(data.repeat(100)))).length, zlib.deflateSync(data).toString('base64'));
}

function workers() {
  section('worker_threads');
  const shared = new SharedArrayBuffer(4 * 4);
  const counters = new Int32Array(shared);
  const jobs = [[2, 20000], [20000, 40000], [40000, 60000], [60000, 80000]];
  return Promise.all(jobs.map(([lo, hi], i) => new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, 'lib', 'primes_worker.js'), { workerData: { lo, hi, slot: i, shared } });
    let result;
    w.on('message', (m) => { result = m; });
    w.on('error', reject);
    w.on('exit', (code) => resolve({ i, code, result }));
  }))).then((rs) => {
    for (const r of rs) console.log(r.i, r.code, r.result.count, r.result.last);
    console.log('shared counters', Array.from(counters), 'total', rs.reduce((s, r) => s + r.result.count, 0), lib.primesBelow(80000).length);
  });
}

function timers() {
  section('timers');
  return new Promise((resolve) => {
    const events = [];
    const start = Date.now();
    setTimeout(() => events.push('timeout 30'), 30);
    setTimeout(() => events.push('timeout 0'), 0);
    setImmediate(() => events.push('immediate'));
    process.nextTick(() => events.push('nextTick'));
    Promise.resolve().then(() => events.push('microtask'));
    let ticks = 0;
    const iv = setInterval(() => {
      ticks += 1;
      events.push(`interval ${ticks}`);
      if (ticks === 5) {
        clearInterval(iv);
        const cancelled = setTimeout(() => events.push('cancelled timer ran'), 10);
        clearTimeout(cancelled);
        setTimeout(() => {
          const elapsed = Date.now() - start;
          console.log(events.slice(0, 2).join(', '), '|', events.slice(2, 4).sort().join(', '));
          console.log(events.slice(3).filter((e) => e.startsWith('interval')).join(', '));
          console.log('timeout 30 fired:', events.includes('timeout 30'), 'cancelled ran:', events.includes('cancelled timer ran'));
          console.log('elapsed plausible:', elapsed >= 50 && elapsed < 10000);
          resolve();
        }, 20);
      }
    }, 10);
  });
}

async function main() {
  await files();
  hashes();
  await workers();
  await timers();
  section('process');
  console.log(process.version.startsWith('v'), process.platform, process.arch, typeof process.pid, os.cpus().length > 0, os.EOL === '\n');
  console.log(JSON.stringify(lib.summary([3, 1, 2])));
  console.log('tour done');
}

main().catch((e) => { console.error(e); process.exit(1); });
