package host

import (
	"context"
	"fmt"
	"io"
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
}

// Result is what a generation produced.
type Result struct {
	PromptTokens []int         `json:"prompt_tokens"`
	Tokens       []int         `json:"tokens"` // generated ids, prompt excluded
	Text         string        `json:"text"`   // generated text, prompt excluded
	Backend      string        `json:"backend"`
	Duration     time.Duration `json:"-"`
	Done         bool          `json:"context_full"` // stopped at the context limit
	// Widths is, with a route option, each generated token's granularity per
	// layer ([tokens][layers]): the widths of the step that sampled it.
	Widths [][]int `json:"widths,omitempty"`
}

// Generate runs a generation on the loaded mix, calling onPiece (if not nil)
// with each token's bytes as it is sampled.
func (m *Module) Generate(ctx context.Context, req Request, onPiece func([]byte)) (*Result, error) {
	start := time.Now()
	backend, err := m.Reset(ctx, req.Options)
	if err != nil {
		return nil, err
	}
	res := &Result{Backend: backend}
	if res.PromptTokens, err = m.Prompt(ctx, req.Prompt); err != nil {
		return nil, err
	}
	var text []byte
	for len(res.Tokens) < req.MaxTokens {
		token, piece, done, err := m.Step(ctx)
		if err != nil {
			return nil, err
		}
		if done {
			res.Done = true
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
		text = append(text, piece...)
		if onPiece != nil {
			onPiece(piece)
		}
	}
	res.Text = string(text)
	res.Duration = time.Since(start)
	return res, nil
}
