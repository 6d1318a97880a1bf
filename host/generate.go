package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/weights"
)

// feedChunk is how many bytes Load copies into the module per feed call.
const feedChunk = 1 << 20

// Load reads a weights file into the module: the header, then only the byte
// ranges that mix needs ("auto" without a plan needs the whole file: the
// module then picks the largest submodel that is there).
func (m *Module) Load(ctx context.Context, file io.ReaderAt, size int64, mix string) (*abi.ModelInfo, *abi.MixInfo, error) {
	model, err := m.ReadHeader(ctx, file, size)
	if err != nil {
		return nil, nil, err
	}
	info, err := m.FetchMix(ctx, file, model, mix)
	if err != nil {
		return nil, nil, err
	}
	return model, info, nil
}

// ReadHeader hands the module the header of a weights file of the given size.
func (m *Module) ReadHeader(ctx context.Context, file io.ReaderAt, size int64) (*abi.ModelInfo, error) {
	pre := make([]byte, weights.Preamble)
	if _, err := file.ReadAt(pre, 0); err != nil {
		return nil, fmt.Errorf("weights file: %w: %v", weights.ErrTruncated, err)
	}
	need, err := m.HeaderLen(ctx, pre)
	if err != nil {
		return nil, err
	}
	if need > size {
		return nil, fmt.Errorf("weights file: %w: header needs %d bytes, file has %d", weights.ErrTruncated, need, size)
	}
	head := make([]byte, need)
	if _, err := file.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("weights file: reading header: %w", err)
	}
	return m.LoadHeader(ctx, head, size)
}

// FetchMix selects mix and feeds the module the bytes of file it still lacks.
func (m *Module) FetchMix(ctx context.Context, file io.ReaderAt, model *abi.ModelInfo, mix string) (*abi.MixInfo, error) {
	var ranges []weights.Range
	if mix == "auto" {
		ranges = model.Ranges[len(model.Ranges)-1]
	} else {
		info, err := m.SetMix(ctx, mix)
		if err != nil {
			return nil, err
		}
		ranges = info.Missing
	}
	buf := make([]byte, feedChunk)
	for _, r := range ranges {
		for off := r.Offset; off < r.End(); off += feedChunk {
			n := min(int64(feedChunk), r.End()-off)
			if _, err := file.ReadAt(buf[:n], off); err != nil {
				return nil, fmt.Errorf("weights file: reading bytes %d–%d: %w", off, off+n, err)
			}
			if err := m.Feed(ctx, off, buf[:n]); err != nil {
				return nil, err
			}
		}
	}
	return m.SetMix(ctx, mix)
}

// Request is one generation.
type Request struct {
	Prompt    string
	MaxTokens int
	Options   abi.Options
	// Stop ends the generation before the first of these strings appears in
	// its text; Result.Text never holds it. Empty strings are ignored.
	Stop []string
	// Context is what happens when the prompt, or the prompt and the text
	// generated, outgrow the model's context: ContextRefuse (the default, "")
	// fails on a long prompt and stops at a full context; ContextTruncateLeft
	// cuts whole characters from the prompt's start until it leaves room for
	// MaxTokens (at most half the context); ContextSlide does that too, and
	// when the context fills, starts again on the last half of the text.
	Context string
}

// Context policies (Request.Context), as the web runtime names them.
const (
	ContextRefuse       = "refuse"
	ContextTruncateLeft = "truncate-left"
	ContextSlide        = "slide"
)

// Result is what a generation produced.
type Result struct {
	PromptTokens []int         `json:"prompt_tokens"` // the prompt the module holds: the kept part, when cut
	Tokens       []int         `json:"tokens"`        // generated ids, prompt excluded
	Text         string        `json:"text"`          // generated text, prompt excluded, stopping before a stop string
	Backend      string        `json:"backend"`
	Duration     time.Duration `json:"-"`
	Done         bool          `json:"context_full"` // stopped at the context limit
	// Reason says why it ended: "length", "stop" (a stop string), "eot"
	// (the model's end-of-text token, header.eot, which is not in Tokens or
	// Text) or "context".
	Reason       string `json:"reason"`
	DroppedChars int    `json:"dropped_chars,omitempty"` // cut from the prompt's start to fit (truncate-left, slide)
	Slides       int    `json:"slides,omitempty"`        // times the window slid (slide)
	// Widths is, with a route option, each generated token's granularity per
	// layer ([tokens][layers]): the widths of the step that sampled it.
	Widths [][]int `json:"widths,omitempty"`
}

// Generate runs a generation on the loaded mix, calling onPiece (if not nil)
// with each piece of text as it becomes safe to show: each token's bytes, or
// with stop strings, the bytes that cannot begin one.
func (m *Module) Generate(ctx context.Context, req Request, onPiece func([]byte)) (*Result, error) {
	start := time.Now()
	limit := 0
	switch req.Context {
	case "", ContextRefuse:
	case ContextTruncateLeft, ContextSlide:
		limit = m.context - 1 - min(req.MaxTokens, m.context/2)
	default:
		return nil, fmt.Errorf("%w: context policy %q (want refuse, truncate-left or slide)", ErrArg, req.Context)
	}
	res := &Result{Reason: "length"}
	var err error
	if res.Backend, res.PromptTokens, res.DroppedChars, err = m.fit(ctx, req.Prompt, req.Options, limit); err != nil {
		return nil, err
	}
	stops := newStopScanner(req.Stop)
	var text, generated []byte
	emit := func(b []byte) {
		text = append(text, b...)
		if onPiece != nil && len(b) > 0 {
			onPiece(b)
		}
	}
	for len(res.Tokens) < req.MaxTokens {
		token, piece, done, err := m.Step(ctx)
		if err != nil {
			return nil, err
		}
		if done {
			if req.Context != ContextSlide {
				res.Done, res.Reason = true, "context"
				break
			}
			all := req.Prompt + string(generated)
			if res.Backend, res.PromptTokens, _, err = m.fit(ctx, all, req.Options, m.context/2); err != nil {
				return nil, err
			}
			res.Slides++
			continue
		}
		if m.eot != nil && token == *m.eot {
			res.Reason = "eot"
			break
		}
		res.Tokens = append(res.Tokens, token)
		if req.Options.Route != 0 {
			w, err := m.Widths(ctx)
			if err != nil {
				return nil, err
			}
			res.Widths = append(res.Widths, w)
		}
		generated = append(generated, piece...)
		out, stopped := stops.push(piece)
		emit(out)
		if stopped {
			res.Reason = "stop"
			break
		}
	}
	if res.Reason != "stop" {
		emit(stops.flush())
	}
	res.Text = string(text)
	res.Duration = time.Since(start)
	return res, nil
}

// promptTooLong reads the token count from the module's refusal of a prompt
// longer than the context ("prompt is N tokens, context is C").
var promptTooLong = regexp.MustCompile(`prompt is (\d+) tokens`)

// fit resets the module and queues the end of text that tokenizes to at most
// limit tokens (0: all of it, or the module's error), cutting whole
// characters from the left. It returns the backend, the prompt's tokens and
// how many characters were dropped.
func (m *Module) fit(ctx context.Context, text string, o abi.Options, limit int) (string, []int, int, error) {
	keep := []rune(text)
	total := len(keep)
	for {
		backend, err := m.Reset(ctx, o)
		if err != nil {
			return "", nil, 0, err
		}
		ids, err := m.Prompt(ctx, string(keep))
		var n int
		switch {
		case err == nil && (limit <= 0 || len(ids) <= limit):
			return backend, ids, total - len(keep), nil
		case err == nil:
			n = len(ids)
		default:
			match := promptTooLong.FindStringSubmatch(err.Error())
			if limit <= 0 || !errors.Is(err, ErrArg) || match == nil {
				return "", nil, 0, err
			}
			n, _ = strconv.Atoi(match[1])
		}
		// Drop the share of characters the excess tokens are, and a little more.
		drop := min(len(keep)-1, (len(keep)*(n-limit)+n-1)/n+1)
		if drop <= 0 {
			return "", nil, 0, fmt.Errorf("%w: cannot cut the prompt to %d tokens", ErrArg, limit)
		}
		keep = keep[drop:]
	}
}

// stopScanner finds the first of several stop strings in bytes pushed piece
// by piece, holding back the bytes that might begin one (web/src/stop.js is
// the same for the browser).
type stopScanner struct {
	stops    [][]byte
	text     []byte
	released int
}

func newStopScanner(stops []string) *stopScanner {
	s := &stopScanner{}
	for _, stop := range stops {
		if stop != "" {
			s.stops = append(s.stops, []byte(stop))
		}
	}
	return s
}

// push appends b and returns the bytes now safe to show, and whether a stop
// string has appeared (they then end just before it). An occurrence cannot
// start before released: its beginning would have been held back.
func (s *stopScanner) push(b []byte) ([]byte, bool) {
	s.text = append(s.text, b...)
	cut := -1
	for _, stop := range s.stops {
		if i := bytes.Index(s.text[s.released:], stop); i >= 0 && (cut < 0 || s.released+i < cut) {
			cut = s.released + i
		}
	}
	if cut >= 0 {
		return s.release(cut), true
	}
	hold := 0
	for _, stop := range s.stops {
		for k := min(len(stop)-1, len(s.text)-s.released); k > hold; k-- {
			if bytes.HasSuffix(s.text, stop[:k]) {
				hold = k
				break
			}
		}
	}
	return s.release(len(s.text) - hold), false
}

// flush releases what is held back.
func (s *stopScanner) flush() []byte { return s.release(len(s.text)) }

func (s *stopScanner) release(end int) []byte {
	if end < s.released {
		end = s.released
	}
	out := bytes.Clone(s.text[s.released:end])
	s.released = end
	return out
}
