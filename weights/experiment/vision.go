package experiment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// Vision is the MatViT experiment (issue 11) on an image set: the nested
// model against four independently trained baselines, Mix'n'Match, adaptive
// retrieval (an index built by one encoder queried by another) and
// consistency with XL.
type Vision struct {
	MatViT     string    // path of the MatViT .matw
	Baselines  [4]string // Baseline-S … XL .matw ("" for one not trained)
	Train      *train.Images
	Test       *train.Images
	IndexLimit int      // index the first IndexLimit training images; 0 means all
	Args       []string // the command line, for the report
	Progress   func(string)
}

// VisionReport is what Vision measures; it is saved as JSON so that the
// Markdown can be re-rendered without recomputing.
type VisionReport struct {
	Args        []string     `json:"args"`
	Date        string       `json:"date"`
	Data        string       `json:"data"`
	DataSHA256  string       `json:"data_sha256"`
	Config      model.Config `json:"config"` // MatViT's
	TrainMeta   string       `json:"train_command"`
	IndexImages int          `json:"index_images"`
	TestImages  int          `json:"test_images"`
	Names       []string     `json:"names"`  // S, M, L, XL
	Params      []int        `json:"params"` // non-embedding parameters of each granularity
	MatAcc      []float64    `json:"matvit_accuracy"`
	BaseAcc     []float64    `json:"baseline_accuracy"` // NaN-free: -1 where not trained
	MatAgree    []float64    `json:"matvit_agreement"`  // with MatViT-XL's predictions
	BaseAgree   []float64    `json:"baseline_agreement"`
	// Retrieval[f][i][q]: 1-NN accuracy on the test set of query encoder q
	// against an index built by encoder i; f 0 is MatViT, 1 the baselines.
	Retrieval [2][][]float64 `json:"retrieval"`
	Mixes     []MixAccuracy  `json:"mixes"`
}

// MixAccuracy is one Mix'n'Match point.
type MixAccuracy struct {
	Mix      string  `json:"mix"`
	Params   int     `json:"params"`
	Accuracy float64 `json:"accuracy"`
}

// encoded is one encoder's pass over a set: its predicted classes and unit
// embeddings.
type encoded struct {
	pred []int
	emb  []float32 // [N][D], each row unit length
}

// encode runs mix over every image of set.
func encode(w *model.Weights, mix model.Mix, set *train.Images) encoded {
	vocab, d := w.Config.Vocab, w.Config.Dim
	out := encoded{pred: make([]int, set.Len()), emb: make([]float32, set.Len()*d)}
	train.ForEachBatch(w, mix, set, 128, func(first, n int, b *model.Batch) {
		for i := range n {
			out.pred[first+i] = model.Argmax(b.Logits()[i*vocab : (i+1)*vocab])
			e := out.emb[(first+i)*d : (first+i+1)*d]
			copy(e, b.Embeddings()[i*d:(i+1)*d])
			model.Normalize(e)
		}
	})
	return out
}

// nearestAccuracy is the 1-NN accuracy of queries (with labels qLabels)
// against index (labels iLabels) by cosine similarity: the fraction of
// queries whose most similar index entry (lowest index on ties) has their
// label.
func nearestAccuracy(index, queries []float32, iLabels, qLabels []int, d int) float64 {
	const block = 256
	n := len(iLabels)
	sims := make([]float32, block*n)
	correct := 0
	mm := model.ActiveKernels().MatMulT
	for first := 0; first < len(qLabels); first += block {
		m := min(block, len(qLabels)-first)
		mm(sims[:m*n], queries[first*d:(first+m)*d], index, m, d, n)
		for q := range m {
			row := sims[q*n : (q+1)*n]
			if iLabels[model.Argmax(row)] == qLabels[first+q] {
				correct++
			}
		}
	}
	return float64(correct) / float64(len(qLabels))
}

func agreement(a, b []int) float64 {
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}

func accuracy(pred, labels []int) float64 { return agreement(pred, labels) }

// lineMixes are the Mix'n'Match models between adjacent granularities: every
// mix of g and g+1 across the layers, without the uniform ones.
func lineMixes(c model.Config) []model.Mix {
	var mixes []model.Mix
	for g := 0; g+1 < c.Granularities(); g++ {
		for bits := 1; bits < 1<<c.Layers-1; bits++ {
			m := make(model.Mix, c.Layers)
			for l := range m {
				m[l] = g + (bits>>l)&1
			}
			mixes = append(mixes, m)
		}
	}
	return mixes
}

// Run measures everything.
func (v *Vision) Run() (*VisionReport, error) {
	say := func(format string, a ...any) {
		if v.Progress != nil {
			v.Progress(fmt.Sprintf(format, a...))
		}
	}
	mw, mh, err := loadMatw(v.MatViT)
	if err != nil {
		return nil, err
	}
	if err := mh.RequireVisionModel(); err != nil {
		return nil, fmt.Errorf("%s: %w", v.MatViT, err)
	}
	c := mw.Config
	if c.Granularities() != 4 {
		return nil, fmt.Errorf("%s: %d granularities; the experiment compares S, M, L, XL", v.MatViT, c.Granularities())
	}
	index := v.Train
	if v.IndexLimit > 0 && v.IndexLimit < index.Len() {
		index = index.Slice(0, v.IndexLimit)
	}
	r := &VisionReport{Args: v.Args, Date: time.Now().UTC().Format("2006-01-02"), Data: v.Test.Name, DataSHA256: v.Test.SHA256,
		Config: c, TrainMeta: mh.Meta["command"], IndexImages: index.Len(), TestImages: v.Test.Len()}
	G := c.Granularities()
	// The four encoders of each family, on the index and the test set.
	var fam [2][]encoded // [family][g] on test
	var famIdx [2][]encoded
	for g := range G {
		r.Names = append(r.Names, c.GranularityName(g))
		r.Params = append(r.Params, c.NonEmbeddingParams(c.Uniform(g)))
		say("MatViT-%s: encoding %d test and %d index images", c.GranularityName(g), v.Test.Len(), index.Len())
		fam[0] = append(fam[0], encode(mw, c.Uniform(g), v.Test))
		famIdx[0] = append(famIdx[0], encode(mw, c.Uniform(g), index))
		r.MatAcc = append(r.MatAcc, accuracy(fam[0][g].pred, v.Test.Labels))
	}
	haveBase := true
	for g, path := range v.Baselines {
		if path == "" {
			haveBase = false
			r.BaseAcc = append(r.BaseAcc, -1)
			continue
		}
		bw, bh, err := loadMatw(path)
		if err != nil {
			return nil, err
		}
		if err := bh.RequireVisionModel(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if bw.Config.Dim != c.Dim || bw.Config.Image == nil || *bw.Config.Image != *c.Image || bw.Config.Hidden() != c.FFNWidths[g] {
			return nil, fmt.Errorf("%s: not Baseline-%s of %s (dim %d, FFN %v)", path, c.GranularityName(g), v.MatViT, bw.Config.Dim, bw.Config.FFNWidths)
		}
		say("Baseline-%s: encoding %d test and %d index images", c.GranularityName(g), v.Test.Len(), index.Len())
		fam[1] = append(fam[1], encode(bw, bw.Config.Uniform(0), v.Test))
		famIdx[1] = append(famIdx[1], encode(bw, bw.Config.Uniform(0), index))
		r.BaseAcc = append(r.BaseAcc, accuracy(fam[1][len(fam[1])-1].pred, v.Test.Labels))
	}
	for g := range G {
		r.MatAgree = append(r.MatAgree, agreement(fam[0][g].pred, fam[0][G-1].pred))
		if haveBase {
			r.BaseAgree = append(r.BaseAgree, agreement(fam[1][g].pred, fam[1][G-1].pred))
		}
	}
	families := 1
	if haveBase {
		families = 2
	}
	for f := range families {
		r.Retrieval[f] = make([][]float64, G)
		for i := range G {
			r.Retrieval[f][i] = make([]float64, G)
			for q := range G {
				say("retrieval %s: index %s, query %s", [2]string{"MatViT", "baselines"}[f], c.GranularityName(i), c.GranularityName(q))
				r.Retrieval[f][i][q] = nearestAccuracy(famIdx[f][i].emb, fam[f][q].emb, index.Labels, v.Test.Labels, c.Dim)
			}
		}
	}
	for _, m := range lineMixes(c) {
		say("Mix'n'Match %s", c.MixSpec(m))
		e := encode(mw, m, v.Test)
		r.Mixes = append(r.Mixes, MixAccuracy{Mix: c.MixSpec(m), Params: c.NonEmbeddingParams(m), Accuracy: accuracy(e.pred, v.Test.Labels)})
	}
	return r, nil
}

// Write saves the report as dir/results/vision.json, its plot as
// dir/results/vision.svg, and its Markdown as dir/VISION.md; the headline
// tables also go into dir/RESULTS.md's vision section.
func (r *VisionReport) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results", "vision.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	line := series{name: "MatViT S…XL", color: "#1f77b4", line: true}
	base := series{name: "Baseline-Z", color: "#d62728", line: true}
	for g := range r.Names {
		line.points = append(line.points, [2]float64{float64(r.Params[g]), 100 * r.MatAcc[g]})
		if r.BaseAcc[g] >= 0 {
			base.points = append(base.points, [2]float64{float64(r.Params[g]), 100 * r.BaseAcc[g]})
		}
	}
	mixes := series{name: "Mix'n'Match", color: "#ff7f0e"}
	for _, m := range r.Mixes {
		mixes.points = append(mixes.points, [2]float64{float64(m.Params), 100 * m.Accuracy})
	}
	pl := plot{"MatViT on Fashion-MNIST: test accuracy vs size", "non-embedding parameters", "% test accuracy", []series{line, base, mixes}}
	if err := os.WriteFile(filepath.Join(dir, "results", "vision.svg"), []byte(pl.svg()), 0o644); err != nil {
		return err
	}
	tables := r.tables()
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# MatViT: a nested vision transformer on Fashion-MNIST\n\n")
	p("Generated by `matedge vision-results %s` on %s — do not edit by hand; rerun it (`-render results/vision.json` re-renders without measuring).\n\n", ShellJoin(r.Args), r.Date)
	c := r.Config
	p("* Data: %s, sha256 `%s`; %d test images; the retrieval index is the first %d training images.\n", r.Data, r.DataSHA256, r.TestImages, r.IndexImages)
	p("* Model: %d×%d grey images in %d×%d patches (%d tokens), dim %d, %d layers, %d heads, FFN widths %v (S, M, L, XL), bidirectional attention, mean pooling, %d classes.\n",
		c.Image.Size, c.Image.Size, c.Image.Patch, c.Image.Patch, c.Context, c.Dim, c.Layers, c.Heads, c.FFNWidths, c.Vocab)
	p("* MatViT trained by `%s`; each Baseline-Z by the same command with `-baseline Z` (same steps, batches and seed).\n\n", r.TrainMeta)
	b.WriteString(tables)
	p("\n## Mix'n'Match\n\n![accuracy vs parameters](results/vision.svg)\n\n")
	p("Every mix of two adjacent granularities across the 4 layers (%d models), on the test set:\n\n| mix | non-emb. params | test accuracy |\n|---|---:|---:|\n", len(r.Mixes))
	ms := slices.Clone(r.Mixes)
	slices.SortStableFunc(ms, func(a, b MixAccuracy) int { return a.Params - b.Params })
	for _, m := range ms {
		p("| %s | %d | %.2f %% |\n", m.Mix, m.Params, 100*m.Accuracy)
	}
	if err := os.WriteFile(filepath.Join(dir, "VISION.md"), b.Bytes(), 0o644); err != nil {
		return err
	}
	section := fmt.Sprintf("## MatViT (vision)\n\nMeasured by `matedge vision-results %s`; details, Mix'n'Match and the plot in [VISION.md](VISION.md).\n\n%s", ShellJoin(r.Args), tables)
	return ReplaceSection(filepath.Join(dir, "RESULTS.md"), "vision", section)
}

// tables renders the accuracy, retrieval and consistency tables with the
// issue's targets.
func (r *VisionReport) tables() string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	G := len(r.Names)
	xl := G - 1
	p("### Test accuracy\n\n| Z | non-emb. params | MatViT-Z | Baseline-Z | Δ (Mat − Base) | within 1 point |\n|---|---:|---:|---:|---:|:-:|\n")
	within := 0
	for g := range G {
		if r.BaseAcc[g] < 0 {
			p("| %s | %d | %.2f %% | not trained | | |\n", r.Names[g], r.Params[g], 100*r.MatAcc[g])
			continue
		}
		d := 100 * (r.MatAcc[g] - r.BaseAcc[g])
		ok := d >= -1
		if ok {
			within++
		}
		p("| %s | %d | %.2f %% | %.2f %% | %+.2f | %s |\n", r.Names[g], r.Params[g], 100*r.MatAcc[g], 100*r.BaseAcc[g], d, yesNo(ok))
	}
	p("\nTargets: MatViT-XL ≥ 90 %%: **%s** (%.2f %%); each MatViT-Z within 1 point of Baseline-Z (or better): %d of %d.\n\n",
		metMissed(r.MatAcc[xl] >= 0.90), 100*r.MatAcc[xl], within, G)
	for f, name := range []string{"MatViT", "Baselines"} {
		ret := r.Retrieval[f]
		if ret == nil {
			continue
		}
		p("### Retrieval: %s, 1-NN test accuracy (rows: index encoder, columns: query encoder)\n\n| index \\ query |", name)
		for _, n := range r.Names {
			p(" %s |", n)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", G))
		for i := range G {
			p("| %s |", r.Names[i])
			for q := range G {
				if i == q {
					p(" **%.2f** |", 100*ret[i][q])
				} else {
					p(" %.2f |", 100*ret[i][q])
				}
			}
			p("\n")
		}
		p("\n")
	}
	m := r.Retrieval[0]
	gap := 100 * (m[0][0] - m[xl][0])
	p("Target: MatViT query S against index XL within 2 points of S against S: **%s** (%.2f %% vs %.2f %%, %.2f points).\n",
		metMissed(gap <= 2), 100*m[xl][0], 100*m[0][0], gap)
	if bret := r.Retrieval[1]; bret != nil {
		var diag, off float64
		for i := range G {
			for q := range G {
				if i == q {
					diag += bret[i][q] / float64(G)
				} else {
					off += bret[i][q] / float64(G*(G-1))
				}
			}
		}
		p("Baselines: mean diagonal %.2f %%, mean off-diagonal %.2f %% (chance is %.0f %%): independently trained encoders do not share a metric space.\n",
			100*diag, 100*off, 100/float64(r.Config.Vocab))
	}
	p("\n### Consistency: predictions equal to XL's (test set)\n\n| Z | MatViT-Z vs MatViT-XL | Baseline-Z vs Baseline-XL |\n|---|---:|---:|\n")
	for g := range xl {
		base := "not trained"
		if g < len(r.BaseAgree) {
			base = fmt.Sprintf("%.2f %%", 100*r.BaseAgree[g])
		}
		p("| %s | %.2f %% | %s |\n", r.Names[g], 100*r.MatAgree[g], base)
	}
	return b.String()
}

func metMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// ReadVisionReport loads a report saved by Write.
func ReadVisionReport(path string) (*VisionReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r VisionReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Sections of a report file that another command owns are marked
// <!-- begin NAME --> … <!-- end NAME -->: ReplaceSection rewrites one, and
// a command that rewrites the whole file keeps them (keepSections).
func sectionMarks(name string) (begin, end string) {
	return "<!-- begin " + name + " -->\n", "<!-- end " + name + " -->\n"
}

// ReplaceSection sets the section name of the file at path to content,
// appending it when the file has none (and creating the file).
func ReplaceSection(path, name, content string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	begin, end := sectionMarks(name)
	block := begin + content + end
	s := string(old)
	if i := strings.Index(s, begin); i >= 0 {
		if j := strings.Index(s[i:], end); j >= 0 {
			s = s[:i] + block + s[i+j+len(end):]
			return os.WriteFile(path, []byte(s), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s += "\n"
	}
	return os.WriteFile(path, []byte(s+block), 0o644)
}

// WriteKeepingSections writes fresh to path (a whole report), keeping the
// marked sections that other commands wrote into the file it replaces.
func WriteKeepingSections(path string, fresh []byte) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, keepSections(old, fresh), 0o644)
}

// keepSections appends to fresh every marked section of old, the file it
// replaces.
func keepSections(old, fresh []byte) []byte {
	s := string(old)
	out := fresh
	for {
		i := strings.Index(s, "<!-- begin ")
		if i < 0 {
			return out
		}
		nameEnd := strings.Index(s[i:], " -->\n")
		if nameEnd < 0 {
			return out
		}
		name := s[i+len("<!-- begin ") : i+nameEnd]
		_, end := sectionMarks(name)
		j := strings.Index(s[i:], end)
		if j < 0 {
			return out
		}
		if !bytes.HasSuffix(out, []byte("\n\n")) {
			out = append(out, '\n')
		}
		out = append(out, s[i:i+j+len(end)]...)
		s = s[i+j+len(end):]
	}
}
