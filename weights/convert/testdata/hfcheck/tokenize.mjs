// Encodes and decodes texts with @huggingface/tokenizers (Hugging Face's
// JavaScript tokenizers, a reader matedge did not write) from a
// tokenizer.json and its tokenizer_config.json: texts come as a JSON array
// on stdin, ids and decoded strings go out as JSON.
//
//   node tokenize.mjs tokenizer.json tokenizer_config.json < texts.json
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const load = (path) => JSON.parse(readFileSync(path, "utf8"));
const tokenizer = new Tokenizer(load(process.argv[2]), load(process.argv[3]));
const texts = JSON.parse(readFileSync(0, "utf8"));
const out = texts.map((t) => {
	const ids = tokenizer.encode(t).ids;
	return { ids, decoded: ids.length ? tokenizer.decode(ids) : "" };
});
process.stdout.write(JSON.stringify(out));
