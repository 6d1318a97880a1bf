// files: a fetch for Node that also reads file: URLs from disk, answering
// Range requests as an HTTP server would (206 with Content-Range, 416 past
// the end, 200 without Range), so the loader treats a local weights file as
// it treats one on a server: it reads only the byte ranges a mix needs.
// Node-only (node:fs); node.js and worker-node.js use it.

import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** fileFetch is fetch for http(s) URLs, and a Range-aware file reader for file: URLs. */
export async function fileFetch(input, init = {}) {
  const url = new URL(String(input));
  if (url.protocol !== 'file:') return fetch(input, init);
  init.signal?.throwIfAborted();
  let handle;
  try {
    handle = await open(fileURLToPath(url));
  } catch (err) {
    return new Response(null, { status: err.code === 'ENOENT' ? 404 : 403, statusText: `${err.code} ${err.message}` });
  }
  try {
    const { size } = await handle.stat();
    const header = new Headers(init.headers).get('Range');
    if (!header) {
      return new Response(await handle.readFile(), { status: 200, headers: { 'Content-Length': String(size) } });
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(header);
    const start = range ? Number(range[1]) : NaN;
    const end = range?.[2] ? Math.min(size - 1, Number(range[2])) : size - 1;
    if (!range || start >= size || end < start) {
      return new Response(null, { status: 416, statusText: 'Range Not Satisfiable', headers: { 'Content-Range': `bytes */${size}` } });
    }
    const bytes = new Uint8Array(end - start + 1);
    for (let at = 0; at < bytes.length;) {
      const { bytesRead } = await handle.read(bytes, at, bytes.length - at, start + at);
      if (bytesRead === 0) break; // the file shrank meanwhile: the loader reports the short body
      at += bytesRead;
    }
    init.signal?.throwIfAborted();
    return new Response(bytes, {
      status: 206,
      headers: { 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': String(bytes.length) },
    });
  } finally {
    await handle.close();
  }
}
