package model

import "fmt"

// Objective is what one training step minimises: Σ_i Weights[i] · CE(Mixes[i]),
// the cross-entropy of each Mix on the same batch. MatFormer's joint training
// is the objective over the G uniform mixes; a single Mix trains one model.
type Objective struct {
	Mixes   []Mix
	Weights []float32 // one per Mix
}

// MatFormerObjective is the joint loss over every uniform granularity of c,
// weighted by weights (one per granularity; nil means 1 each).
func MatFormerObjective(c Config, weights []float32) Objective {
	o := Objective{}
	for g := range c.FFNWidths {
		o.Mixes = append(o.Mixes, c.Uniform(g))
		if weights == nil {
			o.Weights = append(o.Weights, 1)
		}
	}
	if weights != nil {
		if len(weights) != len(c.FFNWidths) {
			panic(fmt.Sprintf("model: %d loss weights for %d granularities", len(weights), len(c.FFNWidths)))
		}
		o.Weights = append(o.Weights, weights...)
	}
	return o
}

// Gradient sets grad to ∂objective/∂w on one batch (tokens and targets
// [B][T]) and returns the cross-entropy of each Mix, nats per token. The mixes
// run one after another through the same activations, so memory does not grow
// with G, and their gradients add up in grad in a fixed order.
func (b *Batch) Gradient(w, grad *Weights, obj Objective, tokens, targets []int) []float64 {
	return obj.gradient(grad,
		func(mix Mix) float64 { return b.Forward(w, mix, tokens, targets) },
		func(scale float32) { b.Backward(w, grad, scale) })
}

// gradient is the joint step of Gradient and GradientImages: forward each
// Mix in turn, and backward (adding scale · ∂loss/∂w to grad) where its
// weight is not 0.
func (o Objective) gradient(grad *Weights, forward func(Mix) float64, backward func(scale float32)) []float64 {
	clear(grad.Data)
	losses := make([]float64, len(o.Mixes))
	for i, mix := range o.Mixes {
		losses[i] = forward(mix)
		if o.Weights[i] != 0 {
			backward(o.Weights[i])
		}
	}
	return losses
}

// FLOPs is the work of one Gradient call on batch sequences of seqLen tokens.
func (o Objective) FLOPs(c Config, batch, seqLen int) float64 {
	var f float64
	for _, mix := range o.Mixes {
		f += TrainingFLOPs(c, mix, batch, seqLen)
	}
	return f
}
