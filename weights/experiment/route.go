package experiment

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// RouteSetup is what Route fits and measures.
type RouteSetup struct {
	Args      []string // the command line, quoted in the report
	Model     string   // the weights file's name, for the report
	Weights   *model.Weights
	Tokenizer *model.Tokenizer
	Corpus    string
	TrainIDs  []int // routers are fitted on the first FitTokens, calibrated on the next CalTokens
	ValidIDs  []int // measured on the first EvalTokens (+1 target)
	SeqLen    int
	Batch     int // windows per forward pass

	FitTokens, CalTokens, EvalTokens int
	ScreenTokens                     int // validation tokens every Mix'n'Match mix is first measured on
	Ridge                            float64
	TableRows                        int       // candidate rows of the budget table
	Budgets                          []float64 // budgets (fractions of XL's FFN FLOPs) measured
	Exponent                         float64   // p in Δloss ∝ err^p
	SensitivityTokens                int       // calibration tokens each layer's sensitivity is measured on
	WideBudget                       float64   // the budget whose per-token widths are tabulated

	// Loss-trained routers (routetrain.go): TrainSteps gradient steps (0: none)
	// from the fitted routers.
	Train RouteTrainSetup
}

// RoutePoint is one measured network: a uniform mix, a Mix'n'Match mix, or
// the router at a budget.
type RoutePoint struct {
	Name     string  `json:"name"`
	Budget   float64 `json:"budget,omitempty"`    // requested, routing only
	FFNShare float64 `json:"ffn_share"`           // mean FFN FLOPs per token / XL's
	Loss     float64 `json:"loss_nats_per_token"` // on the evaluation tokens
	Screen   float64 `json:"screen_loss,omitempty"`
	// Frontier is the Mix'n'Match frontier's loss at FFNShare (routing only),
	// and Share the share of each granularity over tokens and layers.
	Frontier float64   `json:"frontier,omitempty"`
	Share    []float64 `json:"share,omitempty"`
	LayerXL  []float64 `json:"layer_xl,omitempty"` // per layer, the share of tokens that ran XL
}

// TokenWidth is a token's mean FFN width over its occurrences and layers.
type TokenWidth struct {
	Text      string  `json:"text"`
	Count     int     `json:"count"`
	MeanShare float64 `json:"mean_share"` // mean width / XL's
	XLShare   float64 `json:"xl_share"`   // share of (occurrence, layer) at XL
}

// RouteStudy is every measurement of Route; ROUTING.md renders it.
type RouteStudy struct {
	Args   []string       `json:"args"`
	Date   string         `json:"date"`
	Model  string         `json:"model"`
	Corpus string         `json:"corpus"`
	Config model.Config   `json:"config"`
	Setup  map[string]int `json:"setup"`
	Ridge  float64        `json:"ridge"`
	R2     [][]float64    `json:"r2"` // [layers][G-1] of the log-error regression on the calibration records
	// Sensitivity is the calibration loss gained when layer l alone runs g
	// ([layers][G-1], nats/token); Exponent is p.
	Sensitivity [][]float64  `json:"sensitivity"`
	Exponent    float64      `json:"exponent"`
	FitSecs     float64      `json:"fit_seconds"`
	Uniform     []RoutePoint `json:"uniform"`
	Mixes       []RoutePoint `json:"mixes"`    // the screened Pareto set and the presets, on the evaluation tokens
	Screened    int          `json:"screened"` // mixes screened
	Routed      []RoutePoint `json:"routed"`
	Budget      []float32    `json:"budget_table"` // (fraction, τ) rows stored in the file
	Wide        []TokenWidth `json:"wide"`
	Narrow      []TokenWidth `json:"narrow"`
	WideAt      float64      `json:"wide_at"`
	Overhead    float64      `json:"router_flops_share"` // router FLOPs / XL's FFN FLOPs
	TimeRatio   float64      `json:"time_ratio"`         // ForwardRouted (router, XL picked) / Forward XL, measured

	// The loss-trained routers (none when Train.Steps is 0): how they were
	// trained, their budget table and their points at the same budgets.
	Train        RouteTrainSetup `json:"train"`
	TrainSecs    float64         `json:"train_seconds,omitempty"`
	TrainCurve   []float64       `json:"train_curve,omitempty"` // mean objective J over each tenth of the steps
	Trained      []RoutePoint    `json:"trained,omitempty"`
	TrainedTable []float32       `json:"trained_budget_table,omitempty"`
}

// Route fits routers to s.Weights (frozen), calibrates the budget table,
// and measures uniform, Mix'n'Match and routed networks on the same
// validation tokens. It returns the study and the weights with the routers.
func Route(s RouteSetup, progress func(string)) (*RouteStudy, *model.Weights, error) {
	c := s.Weights.Config
	G := c.Granularities()
	if G < 2 {
		return nil, nil, fmt.Errorf("route: the model has one granularity; there is nothing to route")
	}
	if len(s.TrainIDs) < s.FitTokens+s.CalTokens || len(s.ValidIDs) < s.EvalTokens+1 || len(s.ValidIDs) < s.ScreenTokens+1 {
		return nil, nil, fmt.Errorf("route: need %d training and %d validation tokens, have %d and %d", s.FitTokens+s.CalTokens, max(s.EvalTokens, s.ScreenTokens)+1, len(s.TrainIDs), len(s.ValidIDs))
	}
	r := &RouteStudy{Exponent: s.Exponent, Args: s.Args, Date: time.Now().UTC().Format("2006-01-02"), Model: s.Model, Corpus: s.Corpus, Config: c, Ridge: s.Ridge,
		Setup: map[string]int{"fit_tokens": s.FitTokens, "cal_tokens": s.CalTokens, "eval_tokens": s.EvalTokens, "screen_tokens": s.ScreenTokens, "seq_len": s.SeqLen}}
	xl := func(int, []float32) int { return G - 1 }

	// 1. Fit: one XL pass over the fitting text, recording every layer's FFN
	// inputs and each width's error.
	start := time.Now()
	fit := model.NewRouterFit(c)
	windows(s.TrainIDs[:s.FitTokens+1], s.SeqLen, s.Batch, c, func(b *model.Batch, tokens, _ []int) {
		b.ForwardRouted(s.Weights, xl, tokens, nil, nil, fit.Add)
	})
	routers, err := fit.Solve(s.Ridge)
	if err != nil {
		return nil, nil, err
	}
	// 2. Calibrate on the next stretch of training text: the routers'
	// predictions give the budget table; their fit gives R².
	preds := make([][]float32, c.Layers)   // [layers][records][G-1] log-error predictions
	sums := make([][][3]float64, c.Layers) // [layers][G-1] Σy, Σy², Σ(y−ŷ)²
	for l := range sums {
		sums[l] = make([][3]float64, G-1)
	}
	windows(s.TrainIDs[s.FitTokens:s.FitTokens+s.CalTokens+1], s.SeqLen, s.Batch, c, func(b *model.Batch, tokens, _ []int) {
		b.ForwardRouted(s.Weights, xl, tokens, nil, nil, func(l int, in, relErr []float32) {
			router, d := routers[l], c.Dim
			for row := range len(in) / d {
				for g := range G - 1 {
					w := router[g*(d+1) : (g+1)*(d+1)]
					pred := model.Dot(w[:d], in[row*d:(row+1)*d]) + w[d]
					preds[l] = append(preds[l], pred)
					y := math.Log(max(float64(relErr[row*G+g]), 1e-6))
					sums[l][g][0] += y
					sums[l][g][1] += y * y
					sums[l][g][2] += (y - float64(pred)) * (y - float64(pred))
				}
			}
		})
	})
	// 3. From error to loss: per layer and granularity, the loss the whole
	// calibration text gains when that layer alone runs g, spread over the
	// tokens in proportion to err^p (p = s.Exponent, 2 for a loss that is
	// quadratic in a small perturbation): s_g = p·log err + log α_lg.
	calIDs := s.TrainIDs[s.FitTokens : s.FitTokens+min(s.CalTokens, s.SensitivityTokens)+1]
	xlMix := c.Uniform(G - 1)
	base, _ := train.Evaluate(s.Weights, xlMix, calIDs, s.SeqLen, s.Batch)
	var scores []float32 // every record's scores, for the budget table
	for l := range c.Layers {
		records := float64(len(preds[l]) / (G - 1))
		var row []float64
		for g := range G - 1 {
			var mean float64 // of err^p, as the router predicts it
			for i := g; i < len(preds[l]); i += G - 1 {
				mean += math.Exp(s.Exponent*float64(preds[l][i])) / records
			}
			m := slices.Clone(xlMix)
			m[l] = g
			loss, _ := train.Evaluate(s.Weights, m, calIDs, s.SeqLen, s.Batch)
			row = append(row, loss-base)
			shift := float32(math.Log(max(loss-base, 1e-4) / mean))
			w := routers[l][g*(c.Dim+1) : (g+1)*(c.Dim+1)]
			for i := range w {
				w[i] *= float32(s.Exponent)
			}
			w[c.Dim] += shift
			for i := g; i < len(preds[l]); i += G - 1 {
				preds[l][i] = float32(s.Exponent)*preds[l][i] + shift
			}
		}
		r.Sensitivity = append(r.Sensitivity, row)
		scores = append(scores, preds[l]...)
	}
	table := model.BudgetTable(c, scores, s.TableRows)
	routed, err := model.WithRouter(s.Weights, routers, table)
	if err != nil {
		return nil, nil, err
	}
	r.FitSecs = time.Since(start).Seconds()
	r.Budget = table
	for l := range sums {
		var row []float64
		for _, v := range sums[l] {
			n := float64(len(preds[l]) / (G - 1))
			variance := v[1]/n - (v[0]/n)*(v[0]/n)
			row = append(row, 1-v[2]/n/variance)
		}
		r.R2 = append(r.R2, row)
	}
	progress(fmt.Sprintf("routers fitted on %d tokens and calibrated on %d in %.0f s", s.FitTokens, s.CalTokens, r.FitSecs))

	// 3. Measure. Every point runs through the same batched routed forward.
	eval := func(pick model.Picker, ids []int) (float64, []int) { return evalWith(routed, s, c, pick, ids) }
	static := func(m model.Mix) model.Picker { return func(l int, _ []float32) int { return m[l] } }
	evalIDs := s.ValidIDs[:s.EvalTokens+1]
	for g := range G {
		loss, _ := eval(static(c.Uniform(g)), evalIDs)
		r.Uniform = append(r.Uniform, RoutePoint{Name: c.GranularityName(g), FFNShare: mixShare(c, c.Uniform(g)), Loss: loss})
	}
	progress("uniform granularities measured")

	// Mix'n'Match: every mix screened on a shorter stretch; its Pareto set
	// and the presets measured on the evaluation tokens.
	all := allMixes(c)
	screenIDs := s.ValidIDs[:s.ScreenTokens+1]
	type screened struct {
		mix   model.Mix
		share float64
		loss  float64
	}
	var sc []screened
	for _, m := range all {
		loss, _ := train.Evaluate(s.Weights, m, screenIDs, s.SeqLen, s.Batch)
		sc = append(sc, screened{m, mixShare(c, m), loss})
	}
	r.Screened = len(sc)
	sort.Slice(sc, func(i, j int) bool {
		if sc[i].share != sc[j].share {
			return sc[i].share < sc[j].share
		}
		return sc[i].loss < sc[j].loss
	})
	keep := map[string]float64{}
	best := math.Inf(1)
	for _, x := range sc {
		if x.loss < best {
			best = x.loss
			keep[c.MixSpec(x.mix)] = x.loss
		}
	}
	for _, m := range c.PresetMixes() {
		if _, ok := keep[c.MixSpec(m)]; !ok {
			for _, x := range sc {
				if c.MixSpec(x.mix) == c.MixSpec(m) {
					keep[c.MixSpec(m)] = x.loss
				}
			}
		}
	}
	progress(fmt.Sprintf("%d mixes screened on %d tokens; %d measured on %d", len(sc), s.ScreenTokens, len(keep), s.EvalTokens))
	for spec, screen := range keep {
		m, _ := c.ParseMix(spec)
		if isUniform(m) {
			continue
		}
		loss, _ := eval(static(m), evalIDs)
		r.Mixes = append(r.Mixes, RoutePoint{Name: spec, FFNShare: mixShare(c, m), Loss: loss, Screen: screen})
	}
	sort.Slice(r.Mixes, func(i, j int) bool {
		if r.Mixes[i].FFNShare != r.Mixes[j].FFNShare {
			return r.Mixes[i].FFNShare < r.Mixes[j].FFNShare
		}
		return r.Mixes[i].Name < r.Mixes[j].Name
	})

	// Routing at each budget.
	r.Overhead = float64(c.Layers) * c.RouterFLOPs() / (float64(c.Layers) * c.FFNFLOPs(c.Hidden()))
	var widest []int
	r.Routed, widest = routedPoints(routed, s, r, eval, "routed", progress)
	if widest != nil {
		r.WideAt = s.WideBudget
		r.Wide, r.Narrow = tokenWidths(c, s.Tokenizer, evalIDs[:len(evalIDs)-1], widest)
	}
	r.TimeRatio = routerTime(routed)

	// 4. The loss-trained series: from the fitted routers, by gradient on
	// the loss plus priced FLOPs; its own budget table from the same
	// calibration text; measured at the same budgets.
	if s.Train.Steps > 0 {
		trained, err := trainRoutedSeries(s, r, routers, routed, progress)
		if err != nil {
			return nil, nil, err
		}
		r.Trained, _ = routedPoints(trained, s, r, func(pick model.Picker, ids []int) (float64, []int) {
			return evalWith(trained, s, c, pick, ids)
		}, "trained", progress)
		r.TrainedTable = trained.RouterBudget
		if s.Train.Keep {
			return r, trained, nil
		}
	}
	return r, routed, nil
}

// evalWith measures pick on ids through w's batched routed forward: the mean
// loss and every predicted position's granularities ([positions][layers]).
func evalWith(w *model.Weights, s RouteSetup, c model.Config, pick model.Picker, ids []int) (float64, []int) {
	var sum float64
	var n int
	var picks []int
	windows(ids, s.SeqLen, s.Batch, c, func(b *model.Batch, tokens, targets []int) {
		p := make([]int, len(tokens)*c.Layers)
		rows := 0
		for _, t := range targets {
			if t >= 0 {
				rows++
			}
		}
		sum += b.ForwardRouted(w, pick, tokens, targets, p, nil) * float64(rows)
		n += rows
		for i, t := range targets {
			if t >= 0 {
				picks = append(picks, p[i*c.Layers:(i+1)*c.Layers]...)
			}
		}
	})
	return sum / float64(n), picks
}

// routedPoints measures w's routers at every budget of s; it returns the
// points and the picks at s.WideBudget (nil if not among them).
func routedPoints(w *model.Weights, s RouteSetup, r *RouteStudy, eval func(model.Picker, []int) (float64, []int), name string, progress func(string)) ([]RoutePoint, []int) {
	c := w.Config
	G := c.Granularities()
	evalIDs := s.ValidIDs[:s.EvalTokens+1]
	var points []RoutePoint
	var widest []int
	for _, budget := range s.Budgets {
		loss, picks := eval(w.Threshold(w.RouteThreshold(budget)), evalIDs)
		p := RoutePoint{Name: fmt.Sprintf("%s %.2f", name, budget), Budget: budget, Loss: loss, Share: make([]float64, G), LayerXL: make([]float64, c.Layers)}
		var width float64
		for i, g := range picks {
			width += float64(c.FFNWidths[g])
			p.Share[g]++
			if g == G-1 {
				p.LayerXL[i%c.Layers] += float64(c.Layers) / float64(len(picks))
			}
		}
		for g := range p.Share {
			p.Share[g] /= float64(len(picks))
		}
		p.FFNShare = width / float64(len(picks)) / float64(c.Hidden())
		p.Frontier = frontierAt(r.frontier(), p.FFNShare)
		points = append(points, p)
		if budget == s.WideBudget {
			widest = picks
		}
		progress(fmt.Sprintf("%s at budget %.2f: %.2f of XL's FFN FLOPs, %.4f nats/token", name, budget, p.FFNShare, loss))
	}
	return points, widest
}

// windows calls fn on batches of windows of seqLen tokens over ids
// (predicting ids[1:]); the last window may be short, padded with targets −1.
func windows(ids []int, seqLen, batch int, c model.Config, fn func(b *model.Batch, tokens, targets []int)) {
	predicted := len(ids) - 1
	count := (predicted + seqLen - 1) / seqLen
	b := model.NewBatch(c, batch, seqLen)
	tokens, targets := make([]int, batch*seqLen), make([]int, batch*seqLen)
	for first := 0; first < count; first += batch {
		for i := range batch {
			for j := range seqLen {
				pos := (first+i)*seqLen + j
				if pos < predicted {
					tokens[i*seqLen+j], targets[i*seqLen+j] = ids[pos], ids[pos+1]
				} else {
					tokens[i*seqLen+j], targets[i*seqLen+j] = 0, -1
				}
			}
		}
		fn(b, tokens, targets)
	}
}

// mixShare is a mix's mean FFN FLOPs per token over XL's.
func mixShare(c model.Config, m model.Mix) float64 {
	var w float64
	for _, g := range m {
		w += float64(c.FFNWidths[g])
	}
	return w / float64(len(m)*c.Hidden())
}

func isUniform(m model.Mix) bool {
	for _, g := range m {
		if g != m[0] {
			return false
		}
	}
	return true
}

// allMixes lists every mix of c (G^layers of them).
func allMixes(c model.Config) []model.Mix {
	G := c.Granularities()
	n := 1
	for range c.Layers {
		n *= G
	}
	mixes := make([]model.Mix, n)
	for i := range mixes {
		m, k := make(model.Mix, c.Layers), i
		for l := range m {
			m[l], k = k%G, k/G
		}
		mixes[i] = m
	}
	return mixes
}

// frontier is the lower envelope of the uniform and Mix'n'Match points on
// the evaluation tokens: (share, loss), share ascending, loss descending.
func (r *RouteStudy) frontier() [][2]float64 {
	pts := append(slices.Clone(r.Uniform), r.Mixes...)
	sort.Slice(pts, func(i, j int) bool { return pts[i].FFNShare < pts[j].FFNShare })
	var out [][2]float64
	for _, p := range pts {
		if len(out) > 0 && p.Loss >= out[len(out)-1][1] {
			continue
		}
		if len(out) > 0 && p.FFNShare == out[len(out)-1][0] {
			out[len(out)-1][1] = p.Loss
			continue
		}
		out = append(out, [2]float64{p.FFNShare, p.Loss})
	}
	return out
}

// frontierAt is the frontier's loss at share x, linear between its points
// (stricter than a step through the mixes alone: between two mixes it asks
// for what running one on part of the tokens and the other on the rest
// would give); +Inf below the cheapest point, the last point's beyond it.
func frontierAt(f [][2]float64, x float64) float64 {
	if len(f) == 0 || x < f[0][0]-1e-9 {
		return math.Inf(1)
	}
	for i := 1; i < len(f); i++ {
		if x <= f[i][0] {
			t := (x - f[i-1][0]) / (f[i][0] - f[i-1][0])
			return f[i-1][1]*(1-t) + f[i][1]*t
		}
	}
	return f[len(f)-1][1]
}

// tokenWidths tabulates, over the evaluation tokens, each frequent token's
// mean width: the widest and the narrowest ten of those seen at least 20 times.
func tokenWidths(c model.Config, tok *model.Tokenizer, ids, picks []int) (wide, narrow []TokenWidth) {
	type acc struct{ n, xl, width float64 }
	by := map[int]*acc{}
	for i, id := range ids {
		a := by[id]
		if a == nil {
			a = &acc{}
			by[id] = a
		}
		a.n++
		for _, g := range picks[i*c.Layers : (i+1)*c.Layers] {
			a.width += float64(c.FFNWidths[g]) / float64(c.Hidden()) / float64(c.Layers)
			if g == c.Granularities()-1 {
				a.xl += 1 / float64(c.Layers)
			}
		}
	}
	var rows []TokenWidth
	for id, a := range by {
		if a.n >= 20 {
			rows = append(rows, TokenWidth{Text: string(tok.Decode([]int{id})), Count: int(a.n), MeanShare: a.width / a.n, XLShare: a.xl / a.n})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].MeanShare != rows[j].MeanShare {
			return rows[i].MeanShare > rows[j].MeanShare
		}
		return rows[i].Text < rows[j].Text
	})
	n := min(10, len(rows)/2)
	wide = slices.Clone(rows[:n])
	narrow = slices.Clone(rows[len(rows)-n:])
	slices.Reverse(narrow)
	return wide, narrow
}

// visible shows a token's spaces and line breaks.
func visible(s string) string {
	return strings.NewReplacer(" ", "␣", "\n", "↵", "\r", "↵", "\t", "⇥").Replace(s)
}

// routerTime is the measured time of routed decoding with a router that
// picks XL over plain XL decoding, interleaved, on 128 positions: the
// router's own cost. The price is e^−60, not 0 (τ = −∞ returns XL without
// scoring), so every score is computed and none is low enough to pass.
func routerTime(w *model.Weights) float64 {
	c := w.Config
	n := min(128, c.Context)
	xl := c.Uniform(c.Granularities() - 1)
	pick := w.Threshold(-60)
	var plain, routed []float64
	for range 5 {
		s := model.NewState(c)
		t := time.Now()
		for pos := range n {
			model.Forward(w, s, xl, (pos*7919)%c.Vocab, pos)
		}
		plain = append(plain, time.Since(t).Seconds())
		s = model.NewState(c)
		t = time.Now()
		for pos := range n {
			model.ForwardRouted(w, s, pick, (pos*7919)%c.Vocab, pos, nil)
		}
		routed = append(routed, time.Since(t).Seconds())
	}
	slices.Sort(plain)
	slices.Sort(routed)
	return routed[2] / plain[2]
}

// Write renders OUT/ROUTING.md and OUT/results/routing.svg, and saves the
// study as OUT/results/routing.json.
func (r *RouteStudy) Write(dir string) error {
	if err := saveJSON(dir, "routing.json", r); err != nil {
		return err
	}
	c := r.Config
	uni := series{name: "uniform S…XL", color: "#1f77b4", line: true}
	for _, p := range r.Uniform {
		uni.points = append(uni.points, [2]float64{100 * p.FFNShare, p.Loss})
	}
	front := series{name: "Mix'n'Match frontier", color: "#ff7f0e", line: true}
	for _, p := range r.frontier() {
		front.points = append(front.points, [2]float64{100 * p[0], p[1]})
	}
	mixes := series{name: "mixes", color: "#ffbb78"}
	for _, p := range r.Mixes {
		mixes.points = append(mixes.points, [2]float64{100 * p.FFNShare, p.Loss})
	}
	routed := series{name: "routed, fitted", color: "#2ca02c", line: true}
	for _, p := range r.Routed {
		routed.points = append(routed.points, [2]float64{100 * p.FFNShare, p.Loss})
	}
	all := []series{uni, mixes, front, routed}
	if len(r.Trained) > 0 {
		trained := series{name: "routed, loss-trained", color: "#d62728", line: true}
		for _, p := range r.Trained {
			trained.points = append(trained.points, [2]float64{100 * p.FFNShare, p.Loss})
		}
		all = append(all, trained)
	}
	pl := plot{"Validation loss vs FFN FLOPs per token", "mean FFN FLOPs per token, % of XL", "nats/token", all}
	if err := os.WriteFile(filepath.Join(dir, "results", "routing.svg"), []byte(pl.svg()), 0o644); err != nil {
		return err
	}

	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	xlLoss := r.Uniform[len(r.Uniform)-1].Loss
	p("# Token routing: per-token FFN width\n\n")
	p("Generated by `matedge route %s` — do not edit by hand; rerun it. Every number below was measured by that command on %s, %s.\n\n", ShellJoin(r.Args), r.Corpus, r.Date)
	p("## Setup\n\n")
	p("* Model: `%s` (dim %d, %d layers, FFN widths %v), frozen.\n", r.Model, c.Dim, c.Layers, c.FFNWidths)
	p("* Router: per layer, a linear map of the FFN input (rmsnorm of the residual, %d values, and a constant) to a score per granularity but XL, the predicted log of the loss the token gains when this layer runs that granularity instead of XL. A token runs the granularity minimising `exp(score) + exp(τ)·width/width_XL` (XL: `exp(τ)`), predicted loss plus priced compute; one price τ for every layer and token, and a budget (a fraction of XL's FFN FLOPs) maps to τ through a table stored in the file (`model/route.go`).\n", c.Dim)
	p("* Fit (`weights/experiment/route.go`): one XL pass over the first %d training tokens records every layer's FFN input and how far each width's output is from XL's, relative to the residual stream, `err = ‖ffn_XL − ffn_g‖ / ‖x + ffn_XL‖` (the nested FFN makes narrower outputs partial sums of XL's down projection, so one pass gives all of them); a ridge regression (λ = %g) of `log err` on the input, solved in closed form per layer. Then, on the next %d training tokens, each layer's sensitivity: the loss gained when that layer alone runs g (table below), spread over tokens in proportion to err^%g, which turns the predicted log error into the score. The budget table comes from the scores on those tokens. No gradient step; fit and calibration took %.0f s on the shared 2-core machine.\n", r.Setup["fit_tokens"], r.Ridge, r.Setup["cal_tokens"], r.Exponent, r.FitSecs)
	p("* Measured on the first %d tokens of the validation split, in windows of %d tokens each starting with an empty context; every point (uniform, mix, routed) through the same batched forward (`model.Batch.ForwardRouted`). FFN FLOPs counted per token as 6·dim·width per layer, the share is the mean over tokens and layers of width / %d.\n", r.Setup["eval_tokens"], r.Setup["seq_len"], c.Hidden())
	p("* Mix'n'Match: all %d mixes screened on the first %d validation tokens; the screen's Pareto set (no cheaper mix with lower loss) and the preset mixes then measured on the evaluation tokens. The frontier is the lower envelope of those and the uniform points.\n\n", r.Screened, r.Setup["screen_tokens"])
	p("![routing](results/routing.svg)\n\n")

	p("## Uniform and Mix'n'Match\n\n| network | FFN FLOPs (%% of XL) | nats/tok | Δ vs XL |\n|---|---:|---:|---:|\n")
	for _, q := range r.Uniform {
		p("| uniform %s | %.1f | %.4f | %+.4f |\n", q.Name, 100*q.FFNShare, q.Loss, q.Loss-xlLoss)
	}
	for _, q := range r.Mixes {
		p("| %s | %.1f | %.4f | %+.4f |\n", q.Name, 100*q.FFNShare, q.Loss, q.Loss-xlLoss)
	}
	p("\n## Routing\n\nThe fitted routers (closed form, no gradient step):\n\n")
	on, metBudget := r.routingTable(p, r.Routed)
	p("\nThe frontier column is the lower envelope of the measured uniform and Mix'n'Match networks at the routed point's cost, linear between neighbouring networks.\n\n")
	if len(r.Trained) > 0 {
		t := r.Train
		relax := "the softmax mixture of the widths' outputs (the forward runs Σ_g p_g·ffn_g, whose gradient is exact, and the annealing closes the gap to the hard pick)"
		if t.Straight {
			relax = "straight-through: the forward runs the hard pick, as decoding does, so the loss trained is the loss measured, and the backward differentiates the softmax mixture as if it had run (a biased gradient, but the soft forward trains on blends of widths no decoder runs; `-train-soft` runs the mixture instead)"
		}
		p("### Loss-trained routers\n\n")
		p("The same routers, started from the fitted ones and trained by gradient (`model.RouterTrainer`, `weights/experiment/routetrain.go`) on the fitting text with the MatFormer frozen: the objective is the language-model loss plus `e^τ · Σ_layers E_p[width/width_XL]`, the compute penalty λ·(expected FFN FLOPs) whose Lagrangian the pick minimises. Each layer's pick is relaxed to `p = softmax(−u/T)` over the very costs the pick compares, in units of the price, `u_g = exp(score_g − τ) + width_g/width_XL` (XL: 1), so that as T → 0 the relaxation is the pick at τ; training used %s. %d Adam steps (learning rate %g) of %d windows of %d tokens, T annealed geometrically from %g to %g; each step draws its price uniformly in [%.2f, %.2f], the fitted table's prices at the largest and smallest budget measured, so one router is trained for every budget and keeps the budget knob: its own budget table comes from its scores on the calibration text, as the fitted one's does. The backward is the network's activation gradient only (the MatFormer frozen) chained through the mixing weights, including the path through later layers' router inputs; `TestRouterGradient` checks it against finite differences. Training took %.0f s on the shared 2-core machine; the objective J (nats/token) over each tenth of the steps:",
			relax, t.Steps, t.LR, t.Batch, r.Setup["seq_len"], t.Temp[0], t.Temp[1], t.TauRange[0], t.TauRange[1], r.TrainSecs)
		for _, v := range r.TrainCurve {
			p(" %.4f", v)
		}
		p(" (prices drawn at random, so the tenths differ in price as well as in training).\n\n")
		onT, metT := r.routingTable(p, r.Trained)
		p("\nAgainst the fitted routers at the same budgets:\n\n| budget | fitted: FFN %% | nats/tok | Δ vs frontier | trained: FFN %% | nats/tok | Δ vs frontier | trained − fitted at equal cost |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		fitted := r.routedCurve(r.Routed)
		for i, q := range r.Trained {
			f := r.Routed[i]
			vs := "— (cheaper than every fitted point)"
			if at := frontierAt(fitted, q.FFNShare); !math.IsInf(at, 0) {
				vs = fmt.Sprintf("%+.4f", q.Loss-at)
			}
			p("| %.2f | %.1f | %.4f | %+.4f | %.1f | %.4f | %+.4f | %s |\n", q.Budget, 100*f.FFNShare, f.Loss, f.Loss-f.Frontier, 100*q.FFNShare, q.Loss, q.Loss-q.Frontier, vs)
		}
		p("\nThe last column is the trained point's loss less the fitted series' at the trained point's cost, linear between the fitted points.\n\n")
		p("| target | fitted | met | trained | met |\n|---|---|:-:|---|:-:|\n")
		p("| routed points on or below the Mix'n'Match frontier at equal mean FLOPs | %d of %d | %s | %d of %d | %s |\n", on, len(r.Routed), yesNo(on == len(r.Routed)), onT, len(r.Trained), yesNo(onT == len(r.Trained)))
		p("| a budget at ≤ 60 %% of XL's FFN FLOPs within 0.02 nats/token of XL | %s | %s | %s | %s |\n\n", budgetsMet(metBudget), yesNo(len(metBudget) > 0), budgetsMet(metT), yesNo(len(metT) > 0))
	} else {
		p("| target | measured | met |\n|---|---|:-:|\n")
		p("| routed points on or below the Mix'n'Match frontier at equal mean FLOPs | %d of %d | %s |\n", on, len(r.Routed), yesNo(on == len(r.Routed)))
		p("| a budget at ≤ 60 %% of XL's FFN FLOPs within 0.02 nats/token of XL | %s | %s |\n\n", budgetsMet(metBudget), yesNo(len(metBudget) > 0))
	}

	p("### Router fit\n\nR² of the log-error regression on the calibration records (layer × granularity):\n\n| layer |")
	for g := range c.Granularities() - 1 {
		p(" %s |", c.GranularityName(g))
	}
	p("\n|---|")
	for range c.Granularities() - 1 {
		p("---:|")
	}
	p("\n")
	for l, row := range r.R2 {
		p("| %d |", l)
		for _, v := range row {
			p(" %.2f |", v)
		}
		p("\n")
	}
	p("\nSensitivity: calibration loss gained (nats/token) when one layer runs g and the others XL:\n\n| layer |")
	for g := range c.Granularities() - 1 {
		p(" %s |", c.GranularityName(g))
	}
	p("\n|---|")
	for range c.Granularities() - 1 {
		p("---:|")
	}
	p("\n")
	for l, row := range r.Sensitivity {
		p("| %d |", l)
		for _, v := range row {
			p(" %+.4f |", v)
		}
		p("\n")
	}
	stored := map[bool]string{true: " (stored in the file)"}
	p("\nBudget table of the fitted routers%s (fraction of XL's FFN FLOPs → τ), %d rows:", stored[!r.Train.Keep || len(r.Trained) == 0], len(r.Budget)/2)
	for i := 0; i+1 < len(r.Budget); i += 2 {
		p(" %.3f→%.2f", r.Budget[i], r.Budget[i+1])
	}
	p(".\n\n")
	if len(r.TrainedTable) > 0 {
		p("Budget table of the loss-trained routers%s, %d rows:", stored[r.Train.Keep], len(r.TrainedTable)/2)
		for i := 0; i+1 < len(r.TrainedTable); i += 2 {
			p(" %.3f→%.2f", r.TrainedTable[i], r.TrainedTable[i+1])
		}
		p(".\n\n")
	}

	if len(r.Wide) > 0 {
		p("## Which tokens go wide\n\nWith the fitted routers at budget %.2f, tokens seen at least 20 times in the evaluation text, by mean FFN width over their occurrences and the %d layers (%% of XL's width), and how often a layer ran XL for them:\n\n", r.WideAt, c.Layers)
		p("| widest | count | mean width | XL | | narrowest | count | mean width | XL |\n|---|---:|---:|---:|---|---|---:|---:|---:|\n")
		for i := range r.Wide {
			wd, nw := r.Wide[i], r.Narrow[i]
			p("| %s | %d | %.0f%% | %.0f%% | | %s | %d | %.0f%% | %.0f%% |\n", mdQuote(visible(wd.Text)), wd.Count, 100*wd.MeanShare, 100*wd.XLShare, mdQuote(visible(nw.Text)), nw.Count, 100*nw.MeanShare, 100*nw.XLShare)
		}
		p("\n")
	}
	p("## Cost of routing\n\n")
	p("* FLOPs: the routers cost 2·%d·%d FLOPs per token and layer, %.2f %% of XL's FFN FLOPs (included in no share above).\n", c.Granularities()-1, c.Dim+1, 100*r.Overhead)
	p("* Time: decoding 128 positions natively with the router computing every score and picking XL (price e^−60) takes %.3f× the time of plain XL decoding (median of 5 interleaved runs, this machine, shared).\n", r.TimeRatio)
	table := r.Budget
	if r.Train.Keep && len(r.Trained) > 0 {
		table = r.TrainedTable
	}
	p("* Weights: %d floats of routers and %d of budget table, %d bytes in the file.\n", c.Layers*(c.Granularities()-1)*(c.Dim+1), len(table), 4*(c.Layers*(c.Granularities()-1)*(c.Dim+1)+len(table)))
	if err := os.WriteFile(filepath.Join(dir, "ROUTING.md"), b.Bytes(), 0o644); err != nil {
		return err
	}
	return ReplaceSection(filepath.Join(dir, "RESULTS.md"), "routing", r.resultsSection())
}

// resultsSection is routing's summary in RESULTS.md: each routed series
// against XL and the Mix'n'Match frontier, and the target; the
// details stay in ROUTING.md.
func (r *RouteStudy) resultsSection() string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	xlLoss := r.Uniform[len(r.Uniform)-1].Loss
	p("## Token routing\n\nMeasured by `matedge route %s` on %d validation tokens of %s; the setup, the Mix'n'Match networks, which tokens go wide and the plot are in [ROUTING.md](ROUTING.md). Loss in nats/token; Δ vs XL is against uniform XL (%.4f), Δ vs frontier against the Mix'n'Match frontier at the same mean FFN FLOPs (negative: below it).\n\n", ShellJoin(r.Args), r.Setup["eval_tokens"], r.Corpus, xlLoss)
	series := []struct {
		name   string
		points []RoutePoint
	}{{"fitted", r.Routed}, {"loss-trained", r.Trained}}
	p("| routers | budget | FFN FLOPs (%% of XL) | nats/tok | Δ vs XL | Δ vs frontier |\n|---|---:|---:|---:|---:|---:|\n")
	for _, s := range series {
		for _, q := range s.points {
			p("| %s | %.2f | %.1f | %.4f | %+.4f | %+.4f |\n", s.name, q.Budget, 100*q.FFNShare, q.Loss, q.Loss-xlLoss, q.Loss-q.Frontier)
		}
	}
	p("\n")
	for _, s := range series {
		if len(s.points) == 0 {
			continue
		}
		on, best := 0, -1
		for i, q := range s.points {
			if q.Loss <= q.Frontier {
				on++
			}
			if q.FFNShare <= 0.6 && (best < 0 || q.Loss < s.points[best].Loss) {
				best = i
			}
		}
		p("* %s routers: on or below the frontier at %d of %d budgets", s.name, on, len(s.points))
		if best >= 0 {
			q := s.points[best]
			verdict := "**missed**"
			if q.Loss-xlLoss <= 0.02 {
				verdict = "met"
			}
			p("; target ≤ 60 %% of XL's FFN FLOPs within 0.02 of XL: %s (best at ≤ 60 %%: %.1f %% → %+.4f)", verdict, 100*q.FFNShare, q.Loss-xlLoss)
		}
		p(".\n")
	}
	return b.String()
}

// ReadRouteStudy reads a study Write saved (results/routing.json), to render
// it again without measuring.
func ReadRouteStudy(path string) (*RouteStudy, error) {
	var r RouteStudy
	if err := loadJSON(path, &r); err != nil {
		return nil, err
	}
	if len(r.Uniform) == 0 {
		return nil, fmt.Errorf("%s: no uniform points: not a routing study", path)
	}
	return &r, nil
}

// routingTable renders a routed series: its points and, per layer, the share
// of tokens that ran XL. It returns how many points are on or below the
// frontier and the budgets that meet the 60 %/0.02 target.
func (r *RouteStudy) routingTable(p func(string, ...any), points []RoutePoint) (on int, met []string) {
	c := r.Config
	xlLoss := r.Uniform[len(r.Uniform)-1].Loss
	p("| budget | FFN FLOPs (%% of XL) | S / M / L / XL share | nats/tok | Δ vs XL | frontier at that cost | Δ vs frontier |\n|---:|---:|---|---:|---:|---:|---:|\n")
	for _, q := range points {
		shares := make([]string, len(q.Share))
		for g, v := range q.Share {
			shares[g] = fmt.Sprintf("%.0f%%", 100*v)
		}
		p("| %.2f | %.1f | %s | %.4f | %+.4f | %.4f | %+.4f |\n", q.Budget, 100*q.FFNShare, strings.Join(shares, " / "), q.Loss, q.Loss-xlLoss, q.Frontier, q.Loss-q.Frontier)
		if q.Loss <= q.Frontier {
			on++
		}
		if q.FFNShare <= 0.6 && q.Loss-xlLoss <= 0.02 {
			met = append(met, fmt.Sprintf("%.2f", q.Budget))
		}
	}
	p("\nShare of tokens that ran XL, per layer (a layer that never does could be capped at L by the mix, and its XL bytes never fetched):\n\n| budget |")
	for l := range c.Layers {
		p(" layer %d |", l)
	}
	p("\n|---:|")
	for range c.Layers {
		p("---:|")
	}
	p("\n")
	for _, q := range points {
		p("| %.2f |", q.Budget)
		for _, v := range q.LayerXL {
			p(" %.0f%% |", 100*v)
		}
		p("\n")
	}
	return on, met
}

// routedCurve is a routed series as (share, loss) points, share ascending,
// for frontierAt.
func (r *RouteStudy) routedCurve(points []RoutePoint) [][2]float64 {
	var out [][2]float64
	for _, q := range points {
		out = append(out, [2]float64{q.FFNShare, q.Loss})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func budgetsMet(b []string) string {
	if len(b) == 0 {
		return "none"
	}
	return "budgets " + strings.Join(b, ", ")
}
