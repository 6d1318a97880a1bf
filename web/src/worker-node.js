// worker-node: the worker's script in Node's worker_threads — worker.js's
// serve() over parentPort, reading file: URLs from disk (files.js).

import { parentPort } from 'node:worker_threads';

import { fileFetch } from './files.js';
import { serve } from './worker.js';

let listener = null;
serve({
  postMessage: (message, transfer) => parentPort.postMessage(message, transfer),
  set onmessage(fn) {
    if (listener) parentPort.off('message', listener);
    listener = fn && ((data) => fn({ data }));
    if (listener) parentPort.on('message', listener);
  },
}, { fetch: fileFetch });
