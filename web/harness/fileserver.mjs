// fileserver: a small HTTP server for one file, for the cases neither
// `matedge serve` nor nginx produce on demand: a server that ignores Range
// (answers 200 with the whole file), a connection that breaks or stalls
// mid-body, 5xx answers, a byte damaged in transit, a file replaced between
// requests, and no CORS headers. It allows any origin (the page runs on
// another port) unless cors is false, and logs every request as
// {method, path, range, status, bytes}.

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

const etagOf = (bytes) => `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;

/**
 * startFileServer serves bytes at /NAME. With ranges false it ignores Range.
 * Hooks, set on the returned server between requests:
 *   cutAfter = n     end the connection once n body bytes have been sent in
 *                    all (counting from then), as a network failure would;
 *   breakAfter = n   end the next response that is longer after n body bytes (once);
 *   stallAfter = n   send n body bytes of the next response that is longer, then
 *                    nothing, keeping the connection open (once);
 *   fail = [503, …]  answer the next requests with these statuses;
 *   corrupt = at     flip the byte at file offset `at` in the next response
 *                    that holds it (once);
 *   replace(bytes)   serve other bytes from now on (a new ETag);
 *   answer = f       f(entry) runs first for every request; a status it
 *                    returns is the answer, with no body;
 *   hold = f         a request for which f(entry) is true waits, unanswered,
 *                    until release() (which also clears hold).
 */
export async function startFileServer({ name, bytes, ranges = true, cors = true }) {
  const server = {
    url: null,
    requests: [],
    cutAfter: Infinity,
    breakAfter: Infinity,
    stallAfter: Infinity,
    fail: [],
    corrupt: -1,
    answer: null,
    hold: null,
    held: [],
    release() {
      this.hold = null;
      for (const respond of this.held.splice(0)) respond();
    },
    bytes,
    etag: etagOf(bytes),
    replace(next) {
      this.bytes = next;
      this.etag = etagOf(next);
    },
    async stop() {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
  const http = createServer((req, res) => {
    if (cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Headers', 'Range');
      res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag');
    }
    if (req.method === 'OPTIONS') return res.writeHead(204).end();
    const entry = { method: req.method, path: req.url, range: req.headers.range ?? '-', status: 0, bytes: 0 };
    server.requests.push(entry);
    if (req.url !== `/${name}`) {
      entry.status = 404;
      return res.writeHead(404).end();
    }
    if (server.hold?.(entry)) {
      server.held.push(() => respond(req, res, entry));
      return undefined;
    }
    return respond(req, res, entry);
  });
  const respond = (req, res, entry) => {
    const status = server.fail.shift() ?? server.answer?.(entry);
    if (status) {
      entry.status = status;
      return res.writeHead(status).end();
    }
    const file = server.bytes;
    let body = file;
    let first = 0;
    const m = ranges && /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m && Number(m[1]) >= file.length) {
      entry.status = 416;
      return res.writeHead(416, { 'Content-Range': `bytes */${file.length}`, ETag: server.etag }).end();
    }
    if (m) {
      first = Number(m[1]);
      const last = Math.min(Number(m[2]), file.length - 1);
      body = file.subarray(first, last + 1);
      entry.status = 206;
      res.writeHead(206, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Content-Range': `bytes ${first}-${last}/${file.length}`, ETag: server.etag });
    } else {
      entry.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, ETag: server.etag });
    }
    if (server.corrupt >= first && server.corrupt < first + body.length) {
      body = Uint8Array.from(body);
      body[server.corrupt - first] ^= 0xff;
      server.corrupt = -1;
    }
    const stall = server.stallAfter < body.length;
    const allowed = Math.max(0, Math.min(body.length, server.cutAfter, server.stallAfter, server.breakAfter));
    if (server.breakAfter < body.length) server.breakAfter = Infinity;
    server.cutAfter -= allowed;
    if (stall) server.stallAfter = Infinity;
    entry.bytes = allowed;
    if (allowed === body.length) return res.end(body);
    if (stall) {
      res.write(body.subarray(0, allowed)); // and nothing more: the client must give up
      return undefined;
    }
    // Send what the budget allows, then break the connection.
    res.write(body.subarray(0, allowed), () => setTimeout(() => res.destroy(), 20));
    return undefined;
  };
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  server.url = `http://127.0.0.1:${http.address().port}/`;
  return server;
}
