package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/matedge/matedge/model"
)

// byteChars is GPT-2's byte-level alphabet: byte b is written as the rune
// byteChars[b], a printable character, so that every token is a string
// without spaces or control characters. Bytes that are printable Latin-1
// (!…~, ¡…¬, ®…ÿ) stand for themselves; the others take 256, 257, … in order.
var byteChars, charBytes = func() ([256]rune, map[rune]byte) {
	var chars [256]rune
	back := map[rune]byte{}
	next := rune(256)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			chars[b] = rune(b)
		} else {
			chars[b] = next
			next++
		}
		back[chars[b]] = byte(b)
	}
	return chars, back
}()

// byteLevel writes bytes in the byte-level alphabet.
func byteLevel(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteRune(byteChars[c])
	}
	return s.String()
}

// fromByteLevel reads a byte-level string back into bytes.
func fromByteLevel(s string) ([]byte, bool) {
	var out []byte
	for _, r := range s {
		b, ok := charBytes[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// ChunkPattern is model.Chunks as a regular expression (Oniguruma and
// JavaScript syntax): an optional space and a run of letters (ASCII letters,
// the apostrophe and every non-ASCII character), of digits, or of other
// non-space characters; a run of whitespace that leaves its last space to a
// following word; any other run of whitespace. The tokenizer.json written by
// TokenizerJSON splits with it before the byte-level mapping, so Hugging Face
// tokenizers cut text where matedge does (a test checks the pattern against
// model.Chunks with JavaScript's engine).
const ChunkPattern = ` ?[^\x00-\x26\x28-\x40\x5B-\x60\x7B-\x7F]+` +
	`| ?[0-9]+` +
	`| ?[\x00-\x08\x0E-\x1F\x21-\x26\x28-\x2F\x3A-\x40\x5B-\x60\x7B-\x7F]+` +
	`|[\x09-\x0D\x20]+(?=\x20[^\x09-\x0D\x20])` +
	`|[\x09-\x0D\x20]+`

// TokenizerJSON writes tok as a Hugging Face tokenizer.json: a byte-level
// BPE whose vocabulary maps each id's bytes (in the byte-level alphabet) to
// the id, with the merges in rank order. Ids 0…255 are the bytes, 256+i is
// merge i, as in matedge. It refuses a tokenizer in which two ids have the
// same bytes, which the format cannot express.
func TokenizerJSON(tok model.Tokenizer) ([]byte, error) {
	if err := tok.Validate(); err != nil {
		return nil, err
	}
	seen := map[string]int{}
	var vocab bytes.Buffer
	vocab.WriteString("{")
	for id := range tok.Size() {
		s := byteLevel(tok.Piece(id))
		if first, dup := seen[s]; dup {
			return nil, fmt.Errorf("convert: tokenizer ids %d and %d have the same bytes %q; tokenizer.json has one id per string", first, id, tok.Piece(id))
		}
		seen[s] = id
		if id > 0 {
			vocab.WriteString(",")
		}
		k, _ := json.Marshal(s)
		vocab.Write(k)
		vocab.WriteString(":" + strconv.Itoa(id))
	}
	vocab.WriteString("}")
	merges := make([]string, len(tok.Merges))
	for i, m := range tok.Merges {
		merges[i] = byteLevel(tok.Piece(m[0])) + " " + byteLevel(tok.Piece(m[1]))
	}
	byteLevelStep := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": ChunkPattern}, "behavior": "Isolated", "invert": false},
			byteLevelStep,
		}},
		"post_processor": byteLevelStep,
		"decoder":        byteLevelStep,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"vocab": json.RawMessage(vocab.Bytes()), "merges": merges,
		},
	}
	return json.MarshalIndent(doc, "", " ")
}

// ErrNotByteLevel: a tokenizer.json that is not a byte-level BPE.
var ErrNotByteLevel = errors.New("not a byte-level BPE tokenizer")

type hfTokenizer struct {
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	AddedTokens  []struct{}      `json:"added_tokens"`
	Model        struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		ByteFallback bool              `json:"byte_fallback"`
		Prefix       *string           `json:"continuing_subword_prefix"`
		Suffix       *string           `json:"end_of_word_suffix"`
	} `json:"model"`
}

type component struct {
	Type          string      `json:"type"`
	UseRegex      *bool       `json:"use_regex"`
	Pretokenizers []component `json:"pretokenizers"`
	Pattern       struct {
		Regex string `json:"Regex"`
	} `json:"pattern"`
}

// ImportedTokenizer is a tokenizer.json read into matedge's form.
type ImportedTokenizer struct {
	Tokenizer model.Tokenizer
	// HFID[id] is the tokenizer.json id of matedge id id (bytes, then merges).
	HFID []int
	// Notes are the ways matedge's tokenization will differ from the file's.
	Notes []string
}

// ReadTokenizerJSON reads a Hugging Face tokenizer.json that is a byte-level
// BPE (model.type BPE with a ByteLevel pre-tokenizer and decoder) into a
// matedge tokenizer, mapping its ids. Anything else is refused with
// ErrNotByteLevel and the reason.
func ReadTokenizerJSON(b []byte) (*ImportedTokenizer, error) {
	var doc hfTokenizer
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("tokenizer.json: %w: %s", ErrNotByteLevel, fmt.Sprintf(format, a...))
	}
	if doc.Model.Type != "BPE" {
		return nil, refuse("model.type is %q, matedge reads byte-level BPE", doc.Model.Type)
	}
	if doc.Model.ByteFallback || doc.Model.Prefix != nil && *doc.Model.Prefix != "" || doc.Model.Suffix != nil && *doc.Model.Suffix != "" {
		return nil, refuse("a BPE with byte_fallback or subword prefixes/suffixes (SentencePiece-style), not byte-level")
	}
	var pre, dec component
	if len(doc.PreTokenizer) == 0 || string(doc.PreTokenizer) == "null" {
		return nil, refuse("no pre_tokenizer; a byte-level BPE has a ByteLevel one")
	}
	if err := json.Unmarshal(doc.PreTokenizer, &pre); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if len(doc.Decoder) > 0 && string(doc.Decoder) != "null" {
		if err := json.Unmarshal(doc.Decoder, &dec); err != nil {
			return nil, fmt.Errorf("tokenizer.json: decoder: %w", err)
		}
	}
	if dec.Type != "ByteLevel" {
		return nil, refuse("decoder is %q, want ByteLevel", dec.Type)
	}
	var notes []string
	steps := []component{pre}
	if pre.Type == "Sequence" {
		steps = pre.Pretokenizers
	}
	byteLevelSeen := false
	for _, s := range steps {
		switch {
		case s.Type == "ByteLevel":
			byteLevelSeen = true
			if s.UseRegex == nil || *s.UseRegex {
				notes = append(notes, "the file splits text with GPT-2's regular expression; matedge splits with its own (model.Chunks), so some texts tokenize differently")
			}
		case s.Type == "Split" && s.Pattern.Regex == ChunkPattern:
		default:
			notes = append(notes, fmt.Sprintf("pre-tokenizer step %q is replaced by matedge's split (model.Chunks); some texts tokenize differently", s.Type))
		}
	}
	if !byteLevelSeen {
		return nil, refuse("pre_tokenizer %q has no ByteLevel step", pre.Type)
	}
	if len(doc.Normalizer) > 0 && string(doc.Normalizer) != "null" {
		notes = append(notes, "the file's normalizer is not applied by matedge")
	}
	if len(doc.AddedTokens) > 0 {
		notes = append(notes, fmt.Sprintf("%d added/special tokens keep their embedding rows but matedge never produces them", len(doc.AddedTokens)))
	}

	imp := &ImportedTokenizer{Notes: notes}
	ids := map[string]int{} // bytes → matedge id
	for b := range 256 {
		s := string(byteChars[b])
		hf, ok := doc.Model.Vocab[s]
		if !ok {
			return nil, refuse("the vocabulary has no token for byte %#02x (%q)", b, s)
		}
		ids[string([]byte{byte(b)})] = b
		imp.HFID = append(imp.HFID, hf)
	}
	for i, raw := range doc.Model.Merges {
		left, right, err := mergePair(raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: merge %d: %w", i, err)
		}
		lb, ok1 := fromByteLevel(left)
		rb, ok2 := fromByteLevel(right)
		if !ok1 || !ok2 {
			return nil, refuse("merge %d (%q %q) has characters outside the byte-level alphabet", i, left, right)
		}
		a, okA := ids[string(lb)]
		c, okC := ids[string(rb)]
		if !okA || !okC {
			return nil, fmt.Errorf("tokenizer.json: merge %d (%q %q) joins a token no earlier merge made", i, left, right)
		}
		joined := string(lb) + string(rb)
		if prev, dup := ids[joined]; dup {
			return nil, fmt.Errorf("tokenizer.json: merge %d (%q %q) makes a token that id %d already is; matedge gives every merge its own id", i, left, right, prev)
		}
		hf, ok := doc.Model.Vocab[left+right]
		if !ok {
			return nil, fmt.Errorf("tokenizer.json: merge %d makes %q, which is not in the vocabulary", i, left+right)
		}
		ids[joined] = 256 + i
		imp.Tokenizer.Merges = append(imp.Tokenizer.Merges, [2]int{a, c})
		imp.HFID = append(imp.HFID, hf)
	}
	if err := imp.Tokenizer.Validate(); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return imp, nil
}

// mergePair reads a merge written "left right" (older files) or ["left", "right"].
func mergePair(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		left, right, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(right, " ") {
			return "", "", fmt.Errorf("%q is not two tokens", s)
		}
		return left, right, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s is neither \"a b\" nor [\"a\", \"b\"]", raw)
	}
	return pair[0], pair[1], nil
}
