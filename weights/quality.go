package weights

import (
	"encoding/json"
	"fmt"
)

// MetaQuality is the Header.Meta key of a trained model's quality table: a
// JSON list of Quality, one per uniform granularity and per shipped
// Mix'n'Match preset, so that a planner can trade quality for cost.
const MetaQuality = "quality"

// Quality is the measured quality of one submodel of a file.
type Quality struct {
	Mix                string  `json:"mix"`                  // as model.Config.ParseMix reads it: "S" or "S,M,L,XL"
	NonEmbeddingParams int     `json:"non_embedding_params"` // model.Config.NonEmbeddingParams of the mix
	LossNatsPerToken   float64 `json:"loss_nats_per_token"`  // mean cross-entropy on the validation text
	BitsPerByte        float64 `json:"bits_per_byte"`        // the same loss per byte of text, in bits
	Tokens             int     `json:"tokens"`               // validation tokens predicted (a vision model's: images, and the loss is nats per image)
	Accuracy           float64 `json:"accuracy,omitempty"`   // a vision model's classification accuracy on the validation images
}

// Quality returns the quality table of h, or nil if it has none.
func (h *Header) Quality() ([]Quality, error) {
	s, ok := h.Meta[MetaQuality]
	if !ok {
		return nil, nil
	}
	var q []Quality
	if err := json.Unmarshal([]byte(s), &q); err != nil {
		return nil, fmt.Errorf("weights: quality table: %w", err)
	}
	return q, nil
}

// SetQuality stores q as the quality table in meta.
func SetQuality(meta map[string]string, q []Quality) {
	b, err := json.Marshal(q)
	if err != nil {
		panic(err) // Quality holds only numbers and strings
	}
	meta[MetaQuality] = string(b)
}
