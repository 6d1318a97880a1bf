package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// leaves the previous checkpoint in place. It streams the file: the weights
// and moments go from memory to the file a chunk at a time, not through
// copies of the checkpoint.
func (t *Trainer) Save(path string) error {
	cp := checkpointOut{
		Options: t.Options, Step: t.Step, Tokenizer: model.Tokenizer{Merges: t.Tokenizer.Merges},
		AdamStep: t.Optimizer.Step, Weights: f32Bin(t.Weights.Data),
		M: f32Bin(t.Optimizer.M), Moment2: f32Bin(t.Optimizer.V), History: t.History, Meta: t.Meta,
	}
	err := weights.WriteAtomic(path, 0o600, func(out io.Writer) error {
		var head [8]byte
		copy(head[:], checkpointMagic)
		binary.LittleEndian.PutUint32(head[4:], checkpointVersion)
		if _, err := out.Write(head[:]); err != nil {
			return err
		}
		if err := msgpack.NewEncoder(out).Encode(&cp); err != nil {
			return fmt.Errorf("encode checkpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// checkpointOut is checkpoint as Save writes it: the same fields in the same
// order (TestCheckpointStreams checks the bytes are Marshal's of a
// checkpoint), with the float arrays written from memory (f32Bin).
type checkpointOut struct {
	Options   Options           `msgpack:"options"`
	Step      int               `msgpack:"step"`
	Tokenizer model.Tokenizer   `msgpack:"tokenizer"`
	AdamStep  int               `msgpack:"adam_step"`
	Weights   f32Bin            `msgpack:"weights"`
	M         f32Bin            `msgpack:"m"`
	Moment2   f32Bin            `msgpack:"v"`
	History   []Point           `msgpack:"history"`
	Meta      map[string]string `msgpack:"meta,omitempty"`
}

// f32Bin encodes as the msgpack bin of its little-endian f32 bytes, as
// weights.EncodeF32's bytes do, without making them.
type f32Bin []float32

func (x f32Bin) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeBytesLen(4 * len(x)); err != nil {
		return err
	}
	return weights.WriteF32(enc.Writer(), x)
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
