package planner

import (
	"fmt"
	"slices"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// A vision model (weights.MatViT) is planned by accuracy rather than loss:
// its quality table has the validation accuracy of each preset mix, and the
// query encoder a device should run is the most accurate of those that meet
// every limit. An image is one forward pass over all its patches, so the
// speed is images per second (Budget.TargetTokensPerSecond is read as
// images per second). Vision plans run on the CPU: the module's GPU vision
// path exists (classify with backend gpu), but the planner has no
// measurement of its speed to predict from yet.

// ChooseVision plans a vision model: the most accurate mix of the header's
// quality table (the uniform granularities, ranked by size, without one)
// that fits caps and budget, or, with fixed set, that mix. When nothing fits
// it returns a *ConstraintError for the smallest candidate, with its plan.
func ChooseVision(caps Capabilities, h *weights.Header, budget Budget, fixed model.Mix) (Plan, error) {
	if h == nil || !h.IsVision() {
		return Plan{}, fmt.Errorf("planner: ChooseVision needs a vision model's header")
	}
	p, err := newPlanning(&caps, h, budget)
	if err != nil {
		return Plan{}, err
	}
	c := h.Config
	if budget.Backend == BackendGPU {
		return Plan{}, &ConstraintError{Constraint: ConstraintBackend, Backend: BackendGPU, Mix: p.spec(c.Uniform(0)),
			Detail: "the planner cannot predict the GPU vision path's speed yet, so it plans a vision model on the cpu (classify with backend gpu runs it on the GPU)"}
	}
	options := visionOptions(h)
	if fixed != nil {
		if err := c.CheckMix(fixed); err != nil {
			return Plan{}, fmt.Errorf("planner: %w", err)
		}
		o := visionOption{mix: fixed, spec: p.spec(fixed)}
		for _, known := range options {
			if slices.Equal(known.mix, fixed) {
				o = known
			}
		}
		options = []visionOption{o}
	}
	var ruledOut []string
	for _, o := range options {
		x := p.priceImage(o.mix)
		if v := p.violation(x); v != "" {
			ruledOut = append(ruledOut, fmt.Sprintf("%s%s was ruled out: it %s.", o.spec, o.accuracyNote(), p.explain(x, v).Detail))
			continue
		}
		why := "the most accurate that fits"
		switch {
		case fixed != nil:
			why = "the mix given"
		case o.accuracy == 0:
			why = "no accuracies in the quality table, so the largest submodel that fits"
		}
		return p.visionPlan(x, o, ruledOut, why), nil
	}
	// Nothing fits: the error of the cheapest option, with its plan.
	smallest := options[0]
	for _, o := range options[1:] {
		if c.NonEmbeddingParams(o.mix) < c.NonEmbeddingParams(smallest.mix) {
			smallest = o
		}
	}
	x := p.priceImage(smallest.mix)
	e := p.explain(x, p.violation(x))
	plan := p.visionPlan(x, smallest, ruledOut, "nothing fits, so the smallest candidate, to run anyway")
	e.Smallest = &plan
	return Plan{}, e
}

// visionOption is a mix the vision planner considers.
type visionOption struct {
	mix      model.Mix
	spec     string
	accuracy float64 // from the quality table; 0: unknown
	loss     float64
}

func (o visionOption) accuracyNote() string {
	if o.accuracy == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.1f%% accurate)", 100*o.accuracy)
}

// visionOptions lists the mixes to consider, the most preferred first: the
// quality table's mixes by accuracy (the smaller first between equals), or,
// without accuracies, the uniform granularities from the largest down.
func visionOptions(h *weights.Header) []visionOption {
	c := h.Config
	var out []visionOption
	if table, err := h.Quality(); err == nil {
		for _, q := range table {
			if m, err := c.ParseMix(q.Mix); err == nil && q.Accuracy > 0 && q.Accuracy <= 1 {
				out = append(out, visionOption{mix: m, spec: q.Mix, accuracy: q.Accuracy, loss: q.LossNatsPerToken})
			}
		}
	}
	if len(out) == 0 {
		for g := c.Granularities() - 1; g >= 0; g-- {
			out = append(out, visionOption{mix: c.Uniform(g), spec: c.GranularityName(g)})
		}
		return out
	}
	slices.SortStableFunc(out, func(a, b visionOption) int {
		if a.accuracy != b.accuracy {
			if a.accuracy > b.accuracy {
				return -1
			}
			return 1
		}
		return c.NonEmbeddingParams(a.mix) - c.NonEmbeddingParams(b.mix)
	})
	return out
}

// ImageWork is the work of classifying one image with mix: every weight of
// the mix read once, the patch embedding and every block applied to all T
// patches, attention over all T patches in both directions.
func ImageWork(c model.Config, mix model.Mix) Work {
	im := c.Image
	d, t := int64(c.Dim), int64(im.Patches())
	patch := int64(im.PatchLen()) * d
	blocks := int64(c.NonEmbeddingParams(mix))
	keys := 2 * int64(c.Layers) * t * d // [layers][keys, values][T][dim]
	return Work{
		Bytes: elementBytes * (blocks + patch + t*d + int64(c.Vocab)*d + keys),
		FLOPs: 2*t*(blocks+patch) + 2*t*keys + 2*int64(c.Vocab)*d,
	}
}

// priceImage prices mix on the CPU with the work of one image.
func (p *planning) priceImage(mix model.Mix) *candidate {
	x := p.price(mix, BackendCPU)
	x.work = ImageWork(p.header.Config, mix)
	x.tps = p.speeds[BackendCPU].tokensPerSecond(x.work, 0, 0, 0)
	return x
}

// visionPlan fills in a Plan for x with the vision planner's reasons.
func (p *planning) visionPlan(x *candidate, o visionOption, ruledOut []string, why string) Plan {
	plan := p.plan(x, false)
	plan.Speculation = nil
	plan.ExpectedLoss, plan.ExpectedAccuracy = o.loss, o.accuracy
	var r []string
	add := func(format string, args ...any) { r = append(r, fmt.Sprintf(format, args...)) }
	add("A vision model (matvit) is planned by its quality table's accuracy, on the CPU inside the module: the planner cannot predict the GPU vision path's speed yet.")
	add("%s", p.speeds[BackendCPU].source)
	if p.memoryLimit > 0 {
		add("Memory is limited to %s.", p.memoryLimitWhy)
	}
	if p.downloadLimit > 0 {
		add("The download is limited to %s.", p.downloadLimitWhy)
	}
	if target := p.budget.TargetTokensPerSecond; target > 0 {
		add("The budget asks for at least %s images/s.", formatRate(target))
	}
	add("Chose %s as the query encoder%s: %s; %s to download, %s of memory, %s images/s predicted.",
		plan.Spec, o.accuracyNote(), why, formatBytes(plan.DownloadBytes), formatBytes(x.memory), formatRate(x.tps))
	plan.Reasons = append(r, ruledOut...)
	return plan
}
