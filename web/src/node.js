// node: matedge in Node ≥ 20, with the API of matedge.js. The module runs in
// a worker_threads Worker (worker-node.js), or in this thread with
// MatEdge.load({inThread: true}); model and wasm may be paths or file: URLs
// (relative ones resolve against the working directory), read from disk with
// the same range logic as over HTTP, or http(s) URLs. Node has no WebGPU and
// no Cache API: the CPU backend runs, and nothing is cached between runs.
// package.json's "exports" picks this file for Node and matedge.js elsewhere.

import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { fileFetch } from './files.js';
import { runtime } from './matedge.js';

export * from './matedge.js';

// ThreadWorker gives a worker_threads Worker the Web Worker surface MatEdge uses.
class ThreadWorker {
  constructor(url) {
    this.onmessage = null;
    this.onerror = null;
    this.onmessageerror = null;
    this.terminated = false;
    this.thread = new Worker(url, { name: 'matedge' });
    const fail = (message) => this.onerror?.({ message, preventDefault() {} });
    this.thread.on('message', (data) => this.onmessage?.({ data }));
    this.thread.on('error', (err) => fail(err.message));
    this.thread.on('messageerror', () => this.onmessageerror?.());
    this.thread.on('exit', (code) => { if (!this.terminated) fail(`the worker thread exited with code ${code}`); });
  }

  postMessage(message, transfer) { this.thread.postMessage(message, transfer); }

  terminate() {
    this.terminated = true;
    this.thread.terminate();
  }

  // MatEdge refs the thread while a call is in flight, so that an idle model
  // does not keep the process alive.
  ref() { this.thread.ref(); }
  unref() { this.thread.unref(); }
}

runtime.base = () => pathToFileURL(`${process.cwd()}/`).href;
runtime.fetch = fileFetch;
runtime.worker = () => new ThreadWorker(new URL('./worker-node.js', import.meta.url));
