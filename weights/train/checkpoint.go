package train

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/vmihailenco/msgpack/v5"
)

// A checkpoint is everything a run needs to continue as if it had never
// stopped: the options, the step, the weights, AdamW's moments and step, the
// tokenizer, the validation history and the run's provenance. The batch generator needs no state of
// its own: batches are drawn from a generator seeded by (seed, step).
//
//	offset  size  field
//	0       4     magic "MATC"
//	4       4     u32 checkpoint version (1), little-endian
//	8       ...   msgpack checkpoint document
type checkpoint struct {
	Options   Options           `msgpack:"options"`
	Step      int               `msgpack:"step"`
	Tokenizer model.Tokenizer   `msgpack:"tokenizer"`
	AdamStep  int               `msgpack:"adam_step"`
	Weights   []byte            `msgpack:"weights"` // little-endian f32, model.Weights.Data order
	M         []byte            `msgpack:"m"`       // AdamW first moment, same order
	Moment2   []byte            `msgpack:"v"`       // AdamW second moment, same order
	History   []Point           `msgpack:"history"`
	Meta      map[string]string `msgpack:"meta,omitempty"`
}

const (
	checkpointMagic   = "MATC"
	checkpointVersion = 1
)

// ErrCheckpoint means a file is not a checkpoint this build can resume.
var ErrCheckpoint = errors.New("not a resumable matedge checkpoint")

// Save writes the trainer's state to path atomically: a crash mid-write
// leaves the previous checkpoint in place.
func (t *Trainer) Save(path string) error {
	cp := checkpoint{
		Options: t.Options, Step: t.Step, Tokenizer: model.Tokenizer{Merges: t.Tokenizer.Merges},
		AdamStep: t.Optimizer.Step, Weights: weights.EncodeF32(t.Weights.Data),
		M: weights.EncodeF32(t.Optimizer.M), Moment2: weights.EncodeF32(t.Optimizer.V), History: t.History, Meta: t.Meta,
	}
	doc, err := msgpack.Marshal(&cp)
	if err != nil {
		return fmt.Errorf("train: encode checkpoint: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(checkpointVersion))
	buf.Write(doc)
	if err := weights.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// Resume loads a checkpoint written by Save and returns a Trainer that
// continues it. tokenize turns the corpus into ids with the checkpoint's
// tokenizer: the corpus must be the one the run started on.
func Resume(path string, tokenize func(model.Tokenizer) (trainIDs, validIDs []int)) (*Trainer, error) {
	return resume(path, func(o Options, tok model.Tokenizer) (*Trainer, error) {
		trainIDs, validIDs := tokenize(tok)
		return New(o, tok, trainIDs, validIDs)
	})
}

// ResumeVision is Resume for a vision model's run, on the images it started on.
func ResumeVision(path string, trainSet, valid *Images) (*Trainer, error) {
	return resume(path, func(o Options, _ model.Tokenizer) (*Trainer, error) {
		if !o.Config.IsVision() {
			return nil, fmt.Errorf("%w: it holds a language model's run, not a vision model's", ErrCheckpoint)
		}
		return NewVision(o, trainSet, valid)
	})
}

func resume(path string, start func(Options, model.Tokenizer) (*Trainer, error)) (*Trainer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: resume: %w", err)
	}
	if len(b) < 8 || string(b[:4]) != checkpointMagic {
		return nil, fmt.Errorf("train: resume %s: %w (bad magic)", path, ErrCheckpoint)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != checkpointVersion {
		return nil, fmt.Errorf("train: resume %s: %w: version %d, this build reads %d", path, ErrCheckpoint, v, checkpointVersion)
	}
	var cp checkpoint
	if err := msgpack.Unmarshal(b[8:], &cp); err != nil {
		return nil, fmt.Errorf("train: resume %s: %w: %v", path, ErrCheckpoint, err)
	}
	t, err := start(cp.Options, cp.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("train: resume %s: %w", path, err)
	}
	n := len(t.Weights.Data)
	if len(cp.Weights) != 4*n || len(cp.M) != 4*n || len(cp.Moment2) != 4*n {
		return nil, fmt.Errorf("train: resume %s: %w: state sizes do not match the config", path, ErrCheckpoint)
	}
	weights.DecodeF32(t.Weights.Data, cp.Weights)
	weights.DecodeF32(t.Optimizer.M, cp.M)
	weights.DecodeF32(t.Optimizer.V, cp.Moment2)
	t.Optimizer.Step = cp.AdamStep
	t.Step = cp.Step
	t.History = cp.History
	t.Meta = cp.Meta
	return t, nil
}
