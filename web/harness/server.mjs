// server: what the tests need from the Go side — `matedge serve` on a free
// port with its request log, and `matedge generate -json` as the oracle.

import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** BIN is the matedge CLI: $MATEDGE_BIN, else ../bin/matedge. */
export const BIN = process.env.MATEDGE_BIN || join(web, '..', 'bin', 'matedge');

/** DIST is the folder ./build.sh fills: $MATEDGE_DIST, else ../dist. */
export const DIST = process.env.MATEDGE_DIST || join(web, '..', 'dist');

/** missingPackage returns why the package tests cannot run ("needs …"), or null. */
export function missingPackage() {
  const dir = join(DIST, 'npm');
  const tgz = existsSync(dir) ? readdirSync(dir).find((f) => /^matedge-.*\.tgz$/.test(f)) : null;
  return tgz ? null : `needs ${dir}/matedge-VERSION.tgz: run ./build.sh first (it needs npm)`;
}

/** packageTarball is the path of the npm package ./build.sh made. */
export function packageTarball() {
  const dir = join(DIST, 'npm');
  return join(dir, readdirSync(dir).find((f) => /^matedge-.*\.tgz$/.test(f)));
}

/** missingBuild returns why the tests cannot run ("needs …"), or null. */
export function missingBuild() {
  for (const f of [BIN, join(DIST, 'matedge.wasm'), join(DIST, 'kernels.wasm'), join(DIST, 'index.html'), join(DIST, 'matedge.js')]) {
    if (!existsSync(f)) return `needs ${f}: run ./build.sh first`;
  }
  return null;
}

/**
 * startServer runs `matedge serve` on 127.0.0.1 with a port the kernel picks,
 * serving dist (default DIST), and resolves once it listens. `requests` collects its log:
 * {method, path, range, status, bytes}. args are more serve flags.
 */
export async function startServer({ dist = DIST, timeoutMs = 15_000, args = [] } = {}) {
  const child = spawn(BIN, ['serve', '-addr', '127.0.0.1:0', '-dist', dist, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const server = {
    url: null,
    requests: [],
    stderr: '',
    /** stop ends the server; it is safe to call twice. */
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
  let partial = '';
  let listening;
  const ready = new Promise((resolve, reject) => {
    listening = resolve;
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`matedge serve exited with ${code}: ${server.stderr}`)));
    setTimeout(() => reject(new Error(`matedge serve did not start in ${timeoutMs} ms: ${server.stderr}`)), timeoutMs).unref();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => {
    server.stderr += text;
    const lines = (partial + text).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      const listen = /serving .* on (http:\/\/[^/\s]+\/)/.exec(line);
      if (listen) {
        server.url = listen[1];
        listening();
      }
      const m = /^(\w+) (\S+) range=(\S+) (\d+) (\d+)$/.exec(line);
      if (m) server.requests.push({ method: m[1], path: m[2], range: m[3], status: Number(m[4]), bytes: Number(m[5]) });
    }
  });
  try {
    await ready;
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** generate runs `matedge generate -json` (of the default model, or of the file model) and returns its JSON object. */
export async function generate({ prompt, n, mix, seed = 1, temperature = 0, topK = 40, topP = 0.95, backend = 'cpu', precision = 'f32', model = '', route = 0, extra = [] }) {
  const args = ['generate', '-q', '-json', '-backend', backend, '-precision', precision, '-prompt', prompt, '-n', String(n), '-mix', mix,
    '-seed', String(seed), '-temperature', String(temperature), '-top-k', String(topK), '-top-p', String(topP), '-model', model, '-route', String(route), ...extra];
  const { stdout } = await promisify(execFile)(BIN, args, { timeout: 60_000 });
  return JSON.parse(stdout);
}
