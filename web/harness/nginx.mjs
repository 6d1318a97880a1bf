// nginx: Debian's nginx serving dist/ on 127.0.0.1, as a user would host the
// demo — a config written to a temporary folder, run in the foreground with
// its own pid, log and temp paths, stopped afterwards. Nothing is installed
// here: without nginx the tests skip ("needs nginx").

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { DIST } from './server.mjs';

/** NGINX is the nginx binary: $MATEDGE_NGINX, else the one on PATH or Debian's. */
export const NGINX = process.env.MATEDGE_NGINX || ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) || 'nginx';

/**
 * BROTLI_STATIC is Debian's brotli_static module (libnginx-mod-http-brotli-static),
 * loaded when present so that nginx sends matedge.wasm.br; gzip_static is built in.
 */
export const BROTLI_STATIC = '/usr/lib/nginx/modules/ngx_http_brotli_static_module.so';

/** missingBrotliStatic returns why nginx cannot send .br files ("needs …"), or null. */
export function missingBrotliStatic() {
  return existsSync(BROTLI_STATIC) ? null : `needs ${BROTLI_STATIC} (apt-get install libnginx-mod-http-brotli-static)`;
}

/** missingNginx returns why nginx cannot run ("needs …"), or null. */
export function missingNginx() {
  const probe = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `needs nginx (apt-get install nginx; or set MATEDGE_NGINX): ${probe.error?.message ?? probe.stderr.trim()}`;
  return null;
}

// A free port: the kernel picks one for a moment, then nginx takes it.
async function freePort() {
  const probe = createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  return port;
}

/**
 * startNginx serves DIST at / and each of models ({name: path}) at
 * /models/NAME, and resolves once nginx answers. `requests()` reads its
 * access log as {method, path, range, status, bytes} — the shape
 * startServer's log has, so the same assertions read both.
 */
export async function startNginx({ models, timeoutMs = 10_000 }) {
  const dir = await mkdtemp(join(tmpdir(), 'matedge-nginx-'));
  const port = await freePort();
  const log = join(dir, 'access.log');
  const locations = Object.entries(models).map(([name, path]) => `    location = /models/${name} { alias ${resolve(path)}; }`).join('\n');
  // Running as root, nginx would switch its workers to "nobody"; keep the
  // caller's user so that it reads whatever the caller can.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const brotli = !missingBrotliStatic();
  const conf = `${user}
${brotli ? `load_module ${BROTLI_STATIC};` : ''}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  types {
    text/html html;
    text/javascript js mjs;
    text/css css;
    application/wasm wasm;
    application/octet-stream matw;
  }
  default_type application/octet-stream;
  log_format matedge '$request_method $uri range=$http_range $status $body_bytes_sent';
  access_log ${log} matedge;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  sendfile on;
  # ./build.sh writes matedge.wasm.br and .gz beside the module: send them to
  # clients that accept them, with Vary: Accept-Encoding.
  gzip_static on;
  gzip_vary on;
${brotli ? '  brotli_static on;' : ''}
  server {
    listen 127.0.0.1:${port};
    root ${resolve(DIST)};
${locations}
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (t) => { stderr += t; });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const url = `http://127.0.0.1:${port}/`;
  const server = {
    url,
    async requests() {
      const text = await readFile(log, 'utf8').catch(() => '');
      return text.split('\n').flatMap((line) => {
        const m = /^(\w+) (\S+) range=(\S*) (\d+) (\d+)$/.exec(line);
        return m ? [{ method: m[1], path: m[2], range: m[3] || '-', status: Number(m[4]), bytes: Number(m[5]) }] : [];
      });
    },
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT'); // graceful: the master stops its worker
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      await server.stop();
      throw new Error(`nginx exited with ${child.exitCode}: ${stderr}${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`);
    }
    try {
      if ((await fetch(url)).ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`nginx did not answer in ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
