package weights

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// OpenFile opens a weights file for reading and returns it with its size;
// the caller closes it.
func OpenFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// UpgradeFile writes the weights file src (size bytes) to path in the
// current format version, through a temporary file in path's folder that is
// renamed into place only once the result verifies.
func UpgradeFile(src io.ReaderAt, size int64, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upgrade-*.matw")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := Upgrade(tmp, src, size); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return err
	}
	if _, err := Verify(tmp, st.Size()); err != nil {
		return fmt.Errorf("upgrade: the file written does not verify: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// GranularityCost is what one uniform submodel of a file costs.
type GranularityCost struct {
	Name               string  `json:"name"`
	FFNWidth           int     `json:"ffn_width"`
	NonEmbeddingParams int     `json:"non_embedding_params"`
	Bytes              int64   `json:"bytes"` // data bytes, header excluded
	Ranges             []Range `json:"ranges"`
}

// GranularityCosts are the costs of each uniform granularity, smallest first.
func (h *Header) GranularityCosts() []GranularityCost {
	c := h.Config
	var out []GranularityCost
	for g := range c.Granularities() {
		r := h.Ranges(c.Uniform(g))
		out = append(out, GranularityCost{c.GranularityName(g), c.FFNWidths[g], c.NonEmbeddingParams(c.Uniform(g)), Bytes(r), r})
	}
	return out
}

// HumanBytes writes a size in binary units ("512 B", "1.5 MiB"), as the
// tools report downloads, files and memory.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.3g %ciB", v, "KMGT"[i])
}
