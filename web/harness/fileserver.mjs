// fileserver: a small HTTP server for one file, for the cases neither
// `matedge serve` nor nginx produce on demand: a server that ignores Range
// (answers 200 with the whole file), and a connection that breaks mid-body.
// It allows any origin (the page runs on another port) and logs every request
// as {method, path, range, status, bytes}.

import { createServer } from 'node:http';

/**
 * startFileServer serves bytes at /NAME. With ranges false it ignores Range.
 * Setting server.cutAfter to n ends the connection once n body bytes have
 * been sent in all (counting from then), as a network failure would.
 */
export async function startFileServer({ name, bytes, ranges = true }) {
  const server = {
    url: null,
    requests: [],
    cutAfter: Infinity,
    async stop() {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
  const http = createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length');
    if (req.method === 'OPTIONS') return res.writeHead(204).end();
    const entry = { method: req.method, path: req.url, range: req.headers.range ?? '-', status: 0, bytes: 0 };
    server.requests.push(entry);
    if (req.url !== `/${name}`) {
      entry.status = 404;
      return res.writeHead(404).end();
    }
    let body = bytes;
    const m = ranges && /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m) {
      const first = Number(m[1]);
      const last = Math.min(Number(m[2]), bytes.length - 1);
      body = bytes.subarray(first, last + 1);
      entry.status = 206;
      res.writeHead(206, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Content-Range': `bytes ${first}-${last}/${bytes.length}` });
    } else {
      entry.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
    }
    const allowed = Math.max(0, Math.min(body.length, server.cutAfter));
    server.cutAfter -= allowed;
    entry.bytes = allowed;
    if (allowed === body.length) return res.end(body);
    // Send what the budget allows, then break the connection.
    res.write(body.subarray(0, allowed), () => setTimeout(() => res.destroy(), 20));
    return undefined;
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  server.url = `http://127.0.0.1:${http.address().port}/`;
  return server;
}
