// Package planner picks the submodel a device should run: given what the
// device reports (Capabilities), a weights file's header and what the caller
// asks for (Budget), Choose searches the Mix'n'Match space — one FFN
// granularity per layer — for the best expected quality that meets every
// limit, and explains the choice in sentences.
//
// Costs come from first principles: the bytes a mix needs are the header's
// entries; memory is those weights plus one sequence's KV cache and
// activations; a decode step reads every weight of the mix once and the KV
// cache up to its position, so its time is the longer of streaming those
// bytes at the measured GB/s and doing the arithmetic at the measured
// GFLOP/s, plus a fixed overhead. Quality comes from the header's quality
// table, interpolated for mixes it does not list (see qualityModel).
//
// The package is pure and deterministic: the same inputs give the same plan
// natively, inside the wasm module and in the browser.
package planner

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// WasmMemoryLimit is what a wasm32 module can address. The module holds the
// weights of the plan whatever the backend, so no plan may need more.
const WasmMemoryLimit = 4 << 30

// deviceMemoryShare is the part of the device's memory a plan may use: the
// page, the browser and the rest of the system need the other half.
const deviceMemoryShare = 0.5

// maxEnumerated bounds the mixes searched exhaustively. Every layer has the
// same shape, so what a mix costs depends only on how many layers use each
// granularity; Choose tries every such count (C(layers+G−1, G−1) of them:
// 455 for 12 layers and 4 granularities, 20825 for 48) and improves greedily
// beyond.
const maxEnumerated = 25000

// Plan is a submodel chosen for a device, with what it will cost and why.
type Plan struct {
	Mix      model.Mix `msgpack:"mix" json:"mix"`             // granularity index per layer
	MixNames []string  `msgpack:"mix_names" json:"mix_names"` // granularity name per layer
	Spec     string    `msgpack:"spec" json:"spec"`           // the mix as model.Config.ParseMix reads it: "L" or "M,M,L,XL"
	Backend  string    `msgpack:"backend" json:"backend"`     // "gpu" or "cpu"
	DType    string    `msgpack:"dtype" json:"dtype"`         // weight element type: "f32"
	// Ranges are the byte ranges of the file to fetch after the header,
	// sorted and merged (weights.Header.Ranges).
	Ranges        []weights.Range `msgpack:"ranges" json:"ranges"`
	DownloadBytes int64           `msgpack:"download_bytes" json:"download_bytes"` // total of Ranges
	FetchBytes    int64           `msgpack:"fetch_bytes" json:"fetch_bytes"`       // of those, the bytes not in Capabilities.CachedRanges
	// MemoryBytes is what the plan keeps resident against the device's
	// memory: the module's copy of the weights, one sequence's state and
	// the assembly buffer, plus the GPU's copy unless the GPU is discrete.
	MemoryBytes    int64 `msgpack:"memory_bytes" json:"memory_bytes"`
	GPUMemoryBytes int64 `msgpack:"gpu_memory_bytes" json:"gpu_memory_bytes"` // weights and state on the GPU; 0 on cpu
	// NonEmbeddingParams is model.Config.NonEmbeddingParams(Mix).
	NonEmbeddingParams int `msgpack:"non_embedding_params" json:"non_embedding_params"`
	// Work is one decode step at the middle of the context.
	Work                     Work    `msgpack:"work" json:"work"`
	PredictedTokensPerSecond float64 `msgpack:"predicted_tokens_per_second" json:"predicted_tokens_per_second"`
	SpeedMeasured            bool    `msgpack:"speed_measured" json:"speed_measured"` // predicted from a benchmark, not an assumption
	// ExpectedLoss is the validation loss in nats/token the quality table
	// gives or interpolates; 0 when the model has no table.
	ExpectedLoss float64 `msgpack:"expected_loss" json:"expected_loss,omitempty"`
	// ExpectedAccuracy is, for a vision model, the validation accuracy the
	// quality table gives for the mix (0 to 1); 0 without one. A vision
	// plan's PredictedTokensPerSecond is images per second.
	ExpectedAccuracy float64 `msgpack:"expected_accuracy" json:"expected_accuracy,omitempty"`
	// Splits are tensors the GPU backend binds in pieces.
	Splits []Split `msgpack:"splits" json:"splits,omitempty"`
	// Speculation is the expected gain of self-speculative decoding with a
	// narrower draft; nil when there is none.
	Speculation *Speculation `msgpack:"speculation" json:"speculation,omitempty"`
	Reasons     []string     `msgpack:"reasons" json:"reasons"`
}

// Choose returns the plan with the best expected quality that meets every
// limit of caps and budget, preferring the faster backend between equals.
// When nothing fits it returns a *ConstraintError naming the limit the
// smallest submodel breaks.
func Choose(caps Capabilities, h *weights.Header, budget Budget) (Plan, error) {
	p, err := newPlanning(&caps, h, budget)
	if err != nil {
		return Plan{}, err
	}
	var best *candidate
	var winners []*candidate // the best of each backend
	var failures []*ConstraintError
	for _, backend := range p.backends() {
		if backend == BackendGPU && caps.Adapter == nil {
			failures = append(failures, &ConstraintError{Constraint: ConstraintBackend, Backend: BackendGPU,
				Mix:    p.spec(h.Config.Uniform(0)),
				Detail: "the budget asks for the GPU backend and this device has no WebGPU adapter"})
			continue
		}
		c, fail := p.search(backend)
		if fail != nil {
			failures = append(failures, fail)
			continue
		}
		winners = append(winners, c)
		if best == nil || p.better(c, best) {
			best = c
		}
	}
	if best == nil {
		err := failures[0]
		for _, f := range failures[1:] {
			if p.closer(f, err) {
				err = f
			}
		}
		if err.Constraint != ConstraintBackend {
			smallest := p.plan(p.price(h.Config.Uniform(0), err.Backend), false)
			err.Smallest = &smallest
		}
		for _, f := range failures {
			if f != err {
				err.Detail += fmt.Sprintf("; on %s: %s", f.Backend, f.Detail)
			}
		}
		return Plan{}, err
	}
	plan := p.plan(best, true)
	for _, w := range winners {
		if w == best {
			continue
		}
		why := "is predicted slower"
		switch {
		case p.caps.Network.SaveData && w.fetch != best.fetch:
			why = "downloads more"
		case w.score != best.score:
			why = "is expected to be worse"
		}
		plan.Reasons = append(plan.Reasons, fmt.Sprintf("On the %s the best plan would be %s at %s tokens/s, which %s.",
			w.backend, p.spec(w.mix), formatRate(w.tps), why))
	}
	for _, f := range failures {
		plan.Reasons = append(plan.Reasons, fmt.Sprintf("The %s backend was ruled out: even %s %s.", f.Backend, f.Mix, f.Detail))
	}
	return plan, nil
}

// Evaluate prices one mix on one backend against caps and budget. The plan
// is filled in either way; the error, a *ConstraintError, says which limit
// it breaks first.
func Evaluate(caps Capabilities, h *weights.Header, budget Budget, mix model.Mix, backend string) (Plan, error) {
	p, err := newPlanning(&caps, h, budget)
	if err != nil {
		return Plan{}, err
	}
	if err := h.Config.CheckMix(mix); err != nil {
		return Plan{}, fmt.Errorf("planner: %w", err)
	}
	switch {
	case backend != BackendCPU && backend != BackendGPU:
		return Plan{}, fmt.Errorf("planner: backend %q: want cpu or gpu", backend)
	case backend == BackendGPU && caps.Adapter == nil:
		return Plan{}, &ConstraintError{Constraint: ConstraintBackend, Backend: backend, Mix: p.spec(mix),
			Detail: "this device has no WebGPU adapter"}
	}
	c := p.price(mix, backend)
	plan := p.plan(c, false)
	if v := p.violation(c); v != "" {
		return plan, p.explain(c, v)
	}
	return plan, nil
}

// Fastest prices a fixed mix on every backend the budget allows and returns
// the plan predicted fastest among those that fit. When none fits it returns
// the fastest plan with the *ConstraintError of that backend.
func Fastest(caps Capabilities, h *weights.Header, budget Budget, mix model.Mix) (Plan, error) {
	backends := []string{BackendCPU, BackendGPU}
	switch budget.Backend {
	case BackendCPU, BackendGPU:
		backends = []string{budget.Backend}
	}
	var best Plan
	var bestErr error
	found := false
	for _, backend := range backends {
		if backend == BackendGPU && caps.Adapter == nil && len(backends) > 1 {
			continue
		}
		plan, err := Evaluate(caps, h, budget, mix, backend)
		var noFit *ConstraintError
		if err != nil && !errors.As(err, &noFit) {
			return Plan{}, err
		}
		better := plan.PredictedTokensPerSecond > best.PredictedTokensPerSecond
		switch {
		case !found, err == nil && bestErr != nil, (err == nil) == (bestErr == nil) && better:
			best, bestErr, found = plan, err, true
		}
	}
	if bestErr == nil {
		best.Reasons = append(best.Reasons, fmt.Sprintf("The mix %s was given; %s is the backend predicted fastest for it.", best.Spec, best.Backend))
	}
	return best, bestErr
}

// planning is one call's inputs and what follows from them.
type planning struct {
	caps    *Capabilities
	header  *weights.Header
	budget  Budget
	costs   *costModel
	quality *qualityModel
	limits  Limits // the adapter's, defaults filled in
	speeds  map[string]speed

	memoryLimit      int64 // 0: none
	memoryLimitWhy   string
	downloadLimit    int64 // 0: none
	downloadLimitWhy string
}

func newPlanning(caps *Capabilities, h *weights.Header, budget Budget) (*planning, error) {
	if h == nil {
		return nil, fmt.Errorf("planner: no weights header")
	}
	if err := caps.Validate(); err != nil {
		return nil, err
	}
	if err := budget.Validate(); err != nil {
		return nil, err
	}
	p := &planning{caps: caps, header: h, budget: budget, costs: newCostModel(h), quality: newQualityModel(h),
		speeds: map[string]speed{BackendCPU: speedFor(caps, BackendCPU)}}
	if caps.Adapter != nil {
		p.limits = caps.Adapter.limits()
		p.speeds[BackendGPU] = speedFor(caps, BackendGPU)
	}
	if budget.MaxMemoryBytes > 0 {
		p.memoryLimit, p.memoryLimitWhy = budget.MaxMemoryBytes, "the budget's "+formatBytes(budget.MaxMemoryBytes)
	}
	if caps.DeviceMemoryBytes > 0 {
		share := int64(float64(caps.DeviceMemoryBytes) * deviceMemoryShare)
		if p.memoryLimit == 0 || share < p.memoryLimit {
			p.memoryLimit = share
			p.memoryLimitWhy = fmt.Sprintf("%s, half of the device's %s", formatBytes(share), formatBytes(caps.DeviceMemoryBytes))
		}
	}
	if budget.MaxDownloadBytes > 0 {
		p.downloadLimit, p.downloadLimitWhy = budget.MaxDownloadBytes, "the budget's "+formatBytes(budget.MaxDownloadBytes)
	}
	if mbps := caps.Network.DownlinkMbps; budget.MaxDownloadSeconds > 0 && mbps > 0 {
		n := int64(budget.MaxDownloadSeconds * mbps * 1e6 / 8)
		if p.downloadLimit == 0 || n < p.downloadLimit {
			p.downloadLimit = n
			p.downloadLimitWhy = fmt.Sprintf("%s, %g s at the reported %g Mbit/s", formatBytes(n), budget.MaxDownloadSeconds, mbps)
		}
	}
	return p, nil
}

// backends lists the backends to consider, the preferred first.
func (p *planning) backends() []string {
	switch p.budget.Backend {
	case BackendCPU, BackendGPU:
		return []string{p.budget.Backend}
	}
	if p.caps.Adapter != nil {
		return []string{BackendGPU, BackendCPU}
	}
	return []string{BackendCPU}
}

// candidate is a mix on a backend with its costs.
type candidate struct {
	mix        model.Mix
	backend    string
	download   int64 // bytes of the mix's ranges
	fetch      int64 // of those, the bytes not cached: what a download limit counts
	wasmMemory int64
	gpuMemory  int64
	memory     int64
	work       Work
	binds      bindings
	dispatches int   // GPU dispatches per decode step; 0 on the CPU
	rows       int64 // MatrixRows on the GPU; 0 on the CPU
	tps        float64
	params     int
	score      float64 // expected quality: lower is better
}

// price computes what mix costs on backend.
func (p *planning) price(mix model.Mix, backend string) *candidate {
	c := p.header.Config
	x := &candidate{mix: mix, backend: backend, params: c.NonEmbeddingParams(mix), score: p.quality.score(mix)}
	x.download = p.costs.download(mix)
	x.fetch = x.download
	if len(p.caps.CachedRanges) > 0 {
		x.fetch = weights.Bytes(subtractRanges(p.header.Ranges(mix), p.caps.CachedRanges))
	}
	x.wasmMemory = p.costs.wasmMemory(mix, x.download)
	x.memory = x.wasmMemory
	x.work = DecodeWork(c, mix, typicalPosition(c))
	if backend == BackendGPU {
		x.binds = gpuBindings(c, mix, p.limits)
		x.gpuMemory = x.download + p.costs.state
		if p.caps.Adapter.Type != "discrete-gpu" {
			x.memory += x.gpuMemory // integrated and software GPUs share the device's memory
		}
	}
	if backend == BackendGPU {
		x.dispatches = GPUDispatches(c) + x.binds.extra
		x.rows = MatrixRows(c, mix)
	}
	x.tps = p.speeds[backend].tokensPerSecond(x.work, x.dispatches, x.binds.extra, x.rows)
	return x
}

// violation is the first constraint x breaks, or "".
func (p *planning) violation(x *candidate) Constraint {
	switch {
	case x.binds.blocked != "":
		return ConstraintBinding
	case x.wasmMemory > WasmMemoryLimit:
		return ConstraintWasmMemory
	case p.memoryLimit > 0 && x.memory > p.memoryLimit:
		return ConstraintMemory
	case p.downloadLimit > 0 && x.fetch > p.downloadLimit:
		return ConstraintDownload
	case x.tps < p.budget.TargetTokensPerSecond:
		return ConstraintSpeed
	}
	return ""
}

// explain turns a violation into an error with a sentence.
func (p *planning) explain(x *candidate, v Constraint) *ConstraintError {
	e := &ConstraintError{Constraint: v, Backend: x.backend, Mix: p.spec(x.mix), Unit: "bytes"}
	switch v {
	case ConstraintBinding:
		e.Need, e.Limit = float64(x.binds.need), float64(x.binds.limit)
		e.Detail = fmt.Sprintf("%s, and this GPU binds at most %s", x.binds.blocked, formatBytes(x.binds.limit))
	case ConstraintWasmMemory:
		e.Need, e.Limit = float64(x.wasmMemory), WasmMemoryLimit
		e.Detail = fmt.Sprintf("needs %s inside the module; a wasm32 module addresses at most %s", formatBytes(x.wasmMemory), formatBytes(WasmMemoryLimit))
	case ConstraintMemory:
		e.Need, e.Limit = float64(x.memory), float64(p.memoryLimit)
		e.Detail = fmt.Sprintf("needs %s of memory; the limit is %s", formatBytes(x.memory), p.memoryLimitWhy)
	case ConstraintDownload:
		e.Need, e.Limit = float64(x.fetch), float64(p.downloadLimit)
		e.Detail = fmt.Sprintf("needs a %s download; the limit is %s", formatBytes(x.fetch), p.downloadLimitWhy)
	case ConstraintSpeed:
		e.Need, e.Limit, e.Unit = x.tps, p.budget.TargetTokensPerSecond, "tokens/s"
		e.Detail = fmt.Sprintf("is predicted at %s tokens/s; the target is %s", formatRate(x.tps), formatRate(p.budget.TargetTokensPerSecond))
	}
	return e
}

// closer reports whether failure a came nearer to a plan than b: it got
// further down the list of checks.
func (p *planning) closer(a, b *ConstraintError) bool {
	order := []Constraint{ConstraintBackend, ConstraintBinding, ConstraintWasmMemory, ConstraintMemory, ConstraintDownload, ConstraintSpeed}
	return slices.Index(order, a.Constraint) > slices.Index(order, b.Constraint)
}

// better orders feasible candidates: the least download when the user asked
// to save data; then expected quality; then speed; then the mix itself, so
// that the order is total and the plan deterministic.
func (p *planning) better(a, b *candidate) bool {
	if p.caps.Network.SaveData && a.fetch != b.fetch {
		return a.fetch < b.fetch
	}
	if a.score != b.score {
		return a.score < b.score
	}
	if a.tps != b.tps {
		return a.tps > b.tps
	}
	if c := slices.Compare(a.mix, b.mix); c != 0 {
		return c < 0
	}
	return a.backend < b.backend
}

// search finds the best feasible mix on backend, or says why the smallest
// does not fit.
func (p *planning) search(backend string) (*candidate, *ConstraintError) {
	c := p.header.Config
	smallest := p.price(c.Uniform(0), backend)
	if v := p.violation(smallest); v != "" {
		return nil, p.explain(smallest, v)
	}
	best := smallest
	consider := func(mix model.Mix) *candidate {
		x := p.price(mix, backend)
		if p.violation(x) != "" {
			return nil
		}
		if p.better(x, best) {
			best = x
		}
		return x
	}
	for _, m := range p.quality.measured {
		consider(m)
	}
	G := c.Granularities()
	counts := make([]int, G)
	if compositions(c.Layers, G) <= maxEnumerated {
		var walk func(g, left int)
		walk = func(g, left int) {
			if g == G-1 {
				counts[g] = left
				consider(p.layout(counts))
				return
			}
			for n := left; n >= 0; n-- {
				counts[g] = n
				walk(g+1, left-n)
			}
		}
		walk(0, c.Layers)
		return best, nil
	}
	// Too many counts to try: start from the smallest and keep taking the
	// one-layer upgrade that leaves the best feasible mix.
	counts[0] = c.Layers
	for {
		var next *candidate
		var nextCounts []int
		for g := 0; g < G-1; g++ {
			if counts[g] == 0 {
				continue
			}
			counts[g], counts[g+1] = counts[g]-1, counts[g+1]+1
			if x := consider(p.layout(counts)); x != nil && (next == nil || p.better(x, next)) {
				next, nextCounts = x, slices.Clone(counts)
			}
			counts[g], counts[g+1] = counts[g]+1, counts[g+1]-1
		}
		if next == nil {
			return best, nil
		}
		copy(counts, nextCounts)
	}
}

// layout turns counts per granularity into a mix that is monotone in depth,
// wider FFNs later (or earlier, when the quality table says so).
func (p *planning) layout(counts []int) model.Mix {
	mix := make(model.Mix, 0, p.header.Config.Layers)
	for g, n := range counts {
		for range n {
			mix = append(mix, g)
		}
	}
	if !p.quality.growing {
		slices.Reverse(mix)
	}
	return mix
}

// compositions is C(layers+g−1, g−1), the number of ways to count layers
// into g granularities, or more than maxEnumerated.
func compositions(layers, g int) int {
	n := 1
	for i := 1; i < g; i++ {
		n = n * (layers + i) / i
		if n > maxEnumerated {
			return maxEnumerated + 1
		}
	}
	return n
}

// spec writes a mix as ParseMix reads it: one name when uniform.
func (p *planning) spec(mix model.Mix) string {
	c := p.header.Config
	if monotone(mix, true) && monotone(mix, false) {
		return c.GranularityName(mix[0])
	}
	return strings.Join(c.MixNames(mix), ",")
}

// plan fills in a Plan for x, with reasons; chosen adds why nothing bigger
// was taken.
func (p *planning) plan(x *candidate, chosen bool) Plan {
	c := p.header.Config
	ranges := p.header.Ranges(x.mix)
	loss, how := p.quality.loss(x.mix)
	plan := Plan{
		Mix: x.mix, MixNames: c.MixNames(x.mix), Spec: p.spec(x.mix), Backend: x.backend, DType: string(weights.F32),
		Ranges: ranges, DownloadBytes: weights.Bytes(ranges), FetchBytes: x.fetch, MemoryBytes: x.memory, GPUMemoryBytes: x.gpuMemory,
		NonEmbeddingParams: x.params, Work: x.work, PredictedTokensPerSecond: x.tps,
		SpeedMeasured: p.speeds[x.backend].measured, ExpectedLoss: loss, Splits: x.binds.splits,
	}
	r := &plan.Reasons
	add := func(format string, args ...any) { *r = append(*r, fmt.Sprintf(format, args...)) }

	switch {
	case x.backend == BackendCPU && p.caps.Adapter == nil:
		add("There is no WebGPU adapter, so the model runs on the CPU inside the module.")
	case x.backend == BackendCPU && p.budget.Backend == BackendCPU:
		add("The budget asks for the CPU backend, so the GPU (%s) is not used.", p.caps.Adapter.name())
	case x.backend == BackendCPU:
		add("The model runs on the CPU inside the module, although there is a GPU (%s).", p.caps.Adapter.name())
	default:
		add("The model runs on the GPU: %s.", p.caps.Adapter.name())
	}
	add("%s", p.speeds[x.backend].source)
	if p.memoryLimit > 0 {
		add("Memory is limited to %s.", p.memoryLimitWhy)
	} else {
		add("The device does not report its memory, so only a wasm32 module's %s limits it.", formatBytes(WasmMemoryLimit))
	}
	switch {
	case p.downloadLimit > 0:
		add("The download is limited to %s.", p.downloadLimitWhy)
	case p.budget.MaxDownloadSeconds > 0:
		add("The network does not report its speed, so the budget's %g s download limit cannot be applied.", p.budget.MaxDownloadSeconds)
	}
	if target := p.budget.TargetTokensPerSecond; target > 0 {
		add("The budget asks for at least %s tokens/s.", formatRate(target))
	}
	if p.caps.Network.SaveData {
		add("The browser asks to save data, so the plan downloads the least that fits.")
	}

	quality := "no quality table in the model, so submodels are ranked by non-embedding parameters"
	if p.quality.problem != "" {
		quality = "the quality table could not be used (" + p.quality.problem + "), so submodels are ranked by non-embedding parameters"
	}
	if how != "" {
		quality = fmt.Sprintf("expected loss %.3f nats/token, %s", loss, how)
	}
	verb := "Evaluated"
	if chosen {
		verb = "Chose"
	}
	add("%s %s on %s: %s to download in %d range%s, %s of memory, %s tokens/s predicted, %s non-embedding parameters; %s.",
		verb, plan.Spec, x.backend, formatBytes(plan.DownloadBytes), len(ranges), plural(len(ranges)), formatBytes(x.memory),
		formatRate(x.tps), formatCount(x.params), quality)
	if d := p.quality.direction; d != "" && chosen && !(monotone(x.mix, true) && monotone(x.mix, false)) {
		add("%s", d)
	}
	if len(x.binds.splits) > 0 {
		add("This GPU binds at most %s per buffer, so %s.", formatBytes(x.binds.limit), describeSplits(x.binds.splits))
	}
	if cached := plan.DownloadBytes - x.fetch; cached > 0 {
		add("%s of it is cached already, so %s is left to download.", formatBytes(cached), formatBytes(x.fetch))
	}
	if chosen {
		p.whyNotBigger(x, add)
	}
	if speculationBackends[x.backend] {
		plan.Speculation = p.speculation(x)
	}
	p.explainSpeculation(x, plan.Speculation, add)
	if q := p.caps.StorageQuotaBytes; q > 0 && plan.DownloadBytes > q {
		add("The download (%s) is more than the storage quota (%s): it cannot be cached for the next visit.",
			formatBytes(plan.DownloadBytes), formatBytes(q))
	}
	return plan
}

// whyNotBigger explains, for each uniform submodel bigger than x, the limit
// it breaks, and how x's layers are laid out.
func (p *planning) whyNotBigger(x *candidate, add func(string, ...any)) {
	c := p.header.Config
	G := c.Granularities()
	if slices.Max(x.mix) == G-1 && slices.Min(x.mix) == G-1 {
		add("%s, the largest submodel, fits.", c.GranularityName(G-1))
		return
	}
	for g := G - 1; g >= 0; g-- {
		u := p.price(c.Uniform(g), x.backend)
		if u.params <= x.params {
			break
		}
		if v := p.violation(u); v != "" {
			add("%s in every layer %s.", c.GranularityName(g), p.explain(u, v).Detail)
		} else if !p.caps.Network.SaveData {
			add("%s in every layer also fits but is not expected to be better.", c.GranularityName(g))
		}
	}
	if !monotone(x.mix, true) || !monotone(x.mix, false) {
		add("So %s: the most that fits.", describeLayers(c, x.mix))
	}
}

// describeLayers writes a mix as runs: "layers 0–8 use L and layers 9–11 use XL".
func describeLayers(c model.Config, mix model.Mix) string {
	var parts []string
	for start := 0; start < len(mix); {
		end := start
		for end+1 < len(mix) && mix[end+1] == mix[start] {
			end++
		}
		if start == end {
			parts = append(parts, fmt.Sprintf("layer %d uses %s", start, c.GranularityName(mix[start])))
		} else {
			parts = append(parts, fmt.Sprintf("layers %d–%d use %s", start, end, c.GranularityName(mix[start])))
		}
		start = end + 1
	}
	return joinAnd(parts)
}

// describeSplits groups splits by tensor kind: "head (250 MiB) is bound in 2
// pieces and ffn_gate, ffn_up of 12 layers in 2 pieces each".
func describeSplits(splits []Split) string {
	type group struct {
		layers int
		pieces int
		bytes  int64
	}
	groups := map[string]*group{}
	var order []string
	for _, s := range splits {
		kind := s.Tensor
		if i := strings.LastIndexByte(kind, '.'); i >= 0 {
			kind = kind[i+1:]
		}
		g, ok := groups[kind]
		if !ok {
			g = &group{}
			groups[kind] = g
			order = append(order, kind)
		}
		g.layers++
		g.pieces = max(g.pieces, s.Pieces)
		g.bytes = max(g.bytes, s.Bytes)
	}
	var parts []string
	for _, kind := range order {
		g := groups[kind]
		if kind == "embed" || kind == "head" {
			parts = append(parts, fmt.Sprintf("%s (%s) is bound in %d pieces", kind, formatBytes(g.bytes), g.pieces))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%s) in %d layer%s is bound in up to %d pieces", kind, formatBytes(g.bytes), g.layers, plural(g.layers), g.pieces))
		}
	}
	return joinAnd(parts)
}

func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// formatBytes writes a size in binary units: "412 MiB", "1.5 GiB".
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%s %s", formatRate(v), units[u])
}

// formatRate writes a rate with three significant digits, or as a whole
// number from 1000 up.
func formatRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// formatCount writes a parameter count: "262,720".
func formatCount(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
