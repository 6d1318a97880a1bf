// Reading onnxruntime-web's MatMul results (its harness's results.json),
// the peer cpu.mjs and gpu.mjs print beside the module's kernels.
import { readFileSync } from 'node:fs';

// readPeer returns the peer's f32, fully optimised runs that did not fail,
// each with the name of its configuration (EP) as config.
export function readPeer(path) {
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  return doc.configs.flatMap((c) => c.runs.filter((r) => !r.error && r.wdtype === 'f32' && r.opt === 'all')
    .map((r) => ({ ...r, config: c.name })));
}
