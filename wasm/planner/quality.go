package planner

import (
	"fmt"
	"slices"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
)

// qualityModel estimates the validation loss of any mix from the header's
// quality table. MatFormer's Mix'n'Match models lie on the line between the
// trained submodels when loss is plotted against size, so a mix that is not
// in the table is interpolated linearly in non-embedding parameters between
// the measured points. Without a table, quality is ranked by parameter count.
type qualityModel struct {
	config    model.Config
	exact     map[string]float64 // mix key → measured loss
	measured  []model.Mix        // the table's mixes, in table order
	points    []qualityPoint     // by params ascending; loss made non-increasing
	growing   bool               // wider FFNs go to later layers
	direction string             // a sentence on how growing was decided, or ""
	problem   string             // why the table could not be used, or ""
}

type qualityPoint struct {
	params int
	loss   float64
	name   string
}

// mixKey is a map key for a mix: one byte per layer (granularities < 16).
func mixKey(m model.Mix) string {
	b := make([]byte, len(m))
	for i, g := range m {
		b[i] = byte(g)
	}
	return string(b)
}

func newQualityModel(h *weights.Header) *qualityModel {
	c := h.Config
	q := &qualityModel{config: c, exact: map[string]float64{}, growing: true}
	table, err := h.Quality()
	if err != nil {
		q.problem = err.Error()
		return q
	}
	type measured struct {
		mix  model.Mix
		loss float64
		spec string
	}
	var rows []measured
	for _, t := range table {
		m, err := c.ParseMix(t.Mix)
		if err != nil || !(t.LossNatsPerToken > 0) {
			q.problem = fmt.Sprintf("quality table entry %q is unusable", t.Mix)
			continue
		}
		rows = append(rows, measured{m, t.LossNatsPerToken, t.Mix})
		q.exact[mixKey(m)] = t.LossNatsPerToken
		q.measured = append(q.measured, m)
	}
	// Which way should a mix grow with depth? Compare measured mixes that use
	// the same granularities in opposite orders.
	var grows, shrinks float64
	for _, a := range rows {
		if !monotone(a.mix, true) || monotone(a.mix, false) {
			continue
		}
		for _, b := range rows {
			if monotone(b.mix, false) && sameCounts(a.mix, b.mix) {
				if a.loss < b.loss {
					grows++
				} else if b.loss < a.loss {
					shrinks++
				}
				if q.direction == "" {
					q.direction = fmt.Sprintf("%s measured %.3f and %s %.3f nats/token", a.spec, a.loss, b.spec, b.loss)
				}
			}
		}
	}
	q.growing = shrinks <= grows
	if q.direction != "" {
		way := "later"
		if !q.growing {
			way = "earlier"
		}
		q.direction = fmt.Sprintf("The quality table has %s, so wider FFNs go to %s layers.", q.direction, way)
	}
	for _, r := range rows {
		if monotone(r.mix, q.growing) {
			q.points = append(q.points, qualityPoint{c.NonEmbeddingParams(r.mix), r.loss, r.spec})
		}
	}
	slices.SortStableFunc(q.points, func(a, b qualityPoint) int { return a.params - b.params })
	for i := 1; i < len(q.points); i++ {
		// A bigger model is never expected to be worse than a smaller one:
		// where the table says so, it is noise the planner should not chase.
		if q.points[i].loss > q.points[i-1].loss {
			q.points[i].loss = q.points[i-1].loss
		}
	}
	return q
}

// known reports whether losses come from a table.
func (q *qualityModel) known() bool { return len(q.points) > 0 }

// loss estimates mix's validation loss and says how; 0 without a table.
func (q *qualityModel) loss(mix model.Mix) (float64, string) {
	if loss, ok := q.exact[mixKey(mix)]; ok {
		return loss, "measured for this mix"
	}
	if !q.known() {
		return 0, ""
	}
	p := q.config.NonEmbeddingParams(mix)
	first, last := q.points[0], q.points[len(q.points)-1]
	switch {
	case p <= first.params:
		return first.loss, "taken from " + first.name + ", the smallest measured submodel"
	case p >= last.params:
		return last.loss, "taken from " + last.name + ", the largest measured submodel"
	}
	i := slices.IndexFunc(q.points, func(pt qualityPoint) bool { return pt.params >= p })
	a, b := q.points[i-1], q.points[i]
	if b.params == a.params {
		return b.loss, "taken from " + b.name
	}
	t := float64(p-a.params) / float64(b.params-a.params)
	return a.loss + t*(b.loss-a.loss), fmt.Sprintf("interpolated between %s (%.3f) and %s (%.3f) by parameter count", a.name, a.loss, b.name, b.loss)
}

// score orders mixes by expected quality: lower is better.
func (q *qualityModel) score(mix model.Mix) float64 {
	if q.known() {
		loss, _ := q.loss(mix)
		return loss
	}
	return -float64(q.config.NonEmbeddingParams(mix))
}

// monotone reports whether granularity never falls (growing) or never rises
// with depth.
func monotone(m model.Mix, growing bool) bool {
	for i := 1; i < len(m); i++ {
		if (growing && m[i] < m[i-1]) || (!growing && m[i] > m[i-1]) {
			return false
		}
	}
	return true
}

func sameCounts(a, b model.Mix) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
