// An http server: prints "PORT <n>" once it listens on 127.0.0.1 and serves
// until it gets SIGTERM; then it closes the server, prints
// "SIGTERM: served <n> requests" and exits with status 3 once the event loop
// is empty (no process.exit: every handle must close).
//
//   GET  /hello           a fixed greeting
//   GET  /file            data/notes.txt, read with fs/promises
//   GET  /hash?s=TEXT     sha256 of TEXT (crypto)
//   GET  /random?n=N      N random bytes, hex (crypto.randomBytes)
//   GET  /worker?n=N      the sum of 1..N computed in a worker thread
//   POST /echo            the body back, with its sha256 in a header
'use strict';
const http = require('http');
const fsp = require('fs/promises');
const path = require('path');
const crypto = require('crypto');
const { Worker } = require('worker_threads');

let served = 0;

function inWorker(n) {
  return new Promise((resolve, reject) => {
    const w = new Worker('const { parentPort, workerData } = require("worker_threads"); let s = 0n; for (let i = 1n; i <= BigInt(workerData); i++) s += i; parentPort.postMessage(s.toString());', { eval: true, workerData: n });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  served++;
  const url = new URL(req.url, 'http://localhost');
  try {
    if (req.method === 'GET' && url.pathname === '/hello') {
      res.end('hello from node\n');
    } else if (url.pathname === '/file') {
      const text = await fsp.readFile(path.join(__dirname, 'data', 'notes.txt'));
      res.setHeader('Content-Type', 'text/plain');
      res.end(text);
    } else if (url.pathname === '/hash') {
      res.end(crypto.createHash('sha256').update(url.searchParams.get('s') || '').digest('hex'));
    } else if (url.pathname === '/random') {
      res.end(crypto.randomBytes(Number(url.searchParams.get('n') || 16)).toString('hex'));
    } else if (url.pathname === '/worker') {
      res.end(await inWorker(Number(url.searchParams.get('n') || 10)));
    } else if (req.method === 'POST' && url.pathname === '/echo') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks);
      res.setHeader('X-Sha256', crypto.createHash('sha256').update(body).digest('hex'));
      res.end(body);
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e.stack));
  }
});

const tick = setInterval(() => {}, 1000);

process.on('SIGTERM', () => {
  clearInterval(tick);
  server.close(() => {
    console.log(`SIGTERM: served ${served} requests`);
    process.exitCode = 3;
  });
  server.closeAllConnections();
});

server.listen(0, '127.0.0.1', () => {
  console.log(`PORT ${server.address().port}`);
});
