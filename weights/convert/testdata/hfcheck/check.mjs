// Reads a GGUF file with @huggingface/gguf's parser (a reader matedge did not
// write) and prints its metadata, metadata types, tensor infos and where the
// tensor data starts as JSON.
//
//   node check.mjs model.gguf
import { gguf } from "@huggingface/gguf";

const path = process.argv[2];
const { metadata, tensorInfos, typedMetadata, tensorDataOffset } = await gguf(path, { allowLocalFile: true, typedMetadata: true });
const plain = (v) => (typeof v === "bigint" ? Number(v) : Array.isArray(v) ? v.map(plain) : v);
const out = { metadata: {}, types: {}, tensors: [], dataOffset: Number(tensorDataOffset) };
for (const [k, v] of Object.entries(metadata)) {
	out.metadata[k] = plain(v);
}
for (const [k, v] of Object.entries(typedMetadata)) {
	out.types[k] = v.subType === undefined ? v.type : [v.type, v.subType];
}
for (const t of tensorInfos) {
	out.tensors.push({ name: t.name, shape: t.shape.map(Number), dtype: t.dtype, offset: Number(t.offset) });
}
process.stdout.write(JSON.stringify(out));
