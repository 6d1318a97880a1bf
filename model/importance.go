package model

// FFNActivations returns layer l's FFN hidden activations of the last
// Forward, silu(gate·n)·(up·n) for every position and neuron of the mix's
// width in that layer: [B·T][width]. Valid until the next Forward.
func (b *Batch) FFNActivations(l int) (act []float32, width int) {
	width = b.Config.FFNWidths[b.mix[l]]
	return b.layers[l].act[:b.B*b.T*width], width
}
