package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/wasm/abi"
	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/train"
)

func init() {
	register(command{name: "classify", summary: "classify an image with a vision model (MatViT) in the module", run: runClassify})
	register(command{name: "index", summary: "embed an image set with a vision model into a retrieval index (.mati)", run: runIndex})
	register(command{name: "retrieve", summary: "find an image's nearest neighbours in a retrieval index", run: runRetrieve})
}

// imageHelp is what classify and retrieve say about -image.
const imageHelp = `-image is a PNG, JPEG or GIF file (at most 4096 pixels a side), or test:N,
Fashion-MNIST's test image N. It is converted to the model's input: grey
(luminance) for a one-channel model, RGB for three, resized by area averaging
when its size differs (a note on stderr says so; the aspect ratio is not
kept). Transparent pixels count as black. Fashion-MNIST's clothes are light on
a black ground: a photo of a dark object on a white ground wants -invert,
which turns every value x into 1 − x.`

// visionFlags are the flags classify and retrieve share.
type visionFlags struct {
	model, wasm, mix, backend, budget, cache *string
	invert, asJSON, quiet                    *bool
}

func addVisionFlags(fs interface {
	String(name, value, usage string) *string
	Bool(name string, value bool, usage string) *bool
}, mixDefault string) visionFlags {
	return visionFlags{
		model:   fs.String("model", "", "a vision model's weights file (.matw, architecture matvit), e.g. from matedge train -data fashion-mnist"),
		wasm:    fs.String("wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv),
		mix:     fs.String("mix", mixDefault, "the encoder: S, M, L, XL, one granularity per layer (S,M,L,XL), or auto (the planner's most accurate mix that fits this device and -budget)"),
		backend: fs.String("backend", "cpu", "cpu (as the planner plans a vision model: on a software GPU such as lavapipe the GPU path is about 10× slower), gpu, or auto (gpu when the module can run the model there, else cpu)"),
		budget:  fs.String("budget", "balanced", "what -mix auto plans for: fast, balanced or best; speeds are in images/s for a vision model"),
		cache:   fs.String("cache", train.DefaultCache(), "where to download and extract Fashion-MNIST when it is not installed (for test:N)"),
		invert:  fs.Bool("invert", false, "use 1 − x for every pixel value x (a dark object on a light ground; see -help)"),
		asJSON:  fs.Bool("json", false, "print one JSON object (fields: -help)"),
		quiet:   fs.Bool("q", false, "print nothing to stderr but errors"),
	}
}

// visionModel is a vision model loaded into the module with one mix.
type visionModel struct {
	mod     *host.Module
	info    *abi.ModelInfo
	mix     []string // granularity name per layer
	spec    string   // the mix spec that runs
	plan    *abi.PlanResult
	classes []string // a name per class
	name    string   // the file, for messages
	close   func()
}

// openVision starts the module, loads the model's header, refuses a language
// model, plans the mix when it is auto, and feeds the bytes the mix needs.
func openVision(ctx context.Context, st *status, path, wasmPath, mix, backend, budgetName string) (*visionModel, error) {
	if path == "" {
		return nil, fmt.Errorf("-model: give a vision model's weights file (.matw); the embedded default model is a language model")
	}
	switch backend {
	case "cpu", "gpu", "auto":
	default:
		return nil, fmt.Errorf("-backend %q: want cpu, gpu or auto", backend)
	}
	budget, err := planner.Preset(budgetName)
	if err != nil {
		return nil, fmt.Errorf("-budget: %w", err)
	}
	file, size, name, err := host.OpenModel(path)
	if err != nil {
		return nil, err
	}
	closeFile := func() {
		if c, ok := file.(io.Closer); ok {
			c.Close()
		}
	}
	mod, closeModule, err := host.StartModule(ctx, wasmPath, host.Config{})
	if err != nil {
		closeFile()
		return nil, err
	}
	v := &visionModel{mod: mod, name: name, close: func() { closeModule(); closeFile() }}
	fail := func(err error) (*visionModel, error) {
		v.close()
		return nil, err
	}
	if v.info, err = mod.ReadHeader(ctx, file, size); err != nil {
		return fail(fmt.Errorf("%s: %w", name, err))
	}
	h := v.info.Header
	if err := h.RequireVisionModel(); err != nil {
		return fail(fmt.Errorf("%s: %w", name, err))
	}
	if mix != "auto" {
		if _, err := h.Config.ParseMix(mix); err != nil {
			return fail(fmt.Errorf("-mix: %w", err))
		}
	} else {
		st.Stage("measuring this device to plan the encoder")
		if v.plan, err = host.PlanFor(ctx, mod, wasmPath, budget, "auto", "cpu"); err != nil {
			return fail(err)
		}
		if v.plan.Plan == nil || v.plan.Plan.Spec == "" {
			return fail(fmt.Errorf("-mix auto: %s", v.plan.Error))
		}
		mix = v.plan.Plan.Spec
	}
	st.Stage("loading %s (mix %s)", name, mix)
	mixInfo, err := mod.FetchMix(ctx, file, v.info, mix)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", name, err))
	}
	v.mix, v.spec = mixInfo.Mix, mix
	v.classes = classNames(h)
	st.Idle()
	return v, nil
}

// choice says which mix runs and why, for the stderr line.
func (v *visionModel) choice(budget string) string {
	if v.plan == nil {
		return fmt.Sprintf("mix %s (-mix)", v.spec)
	}
	p := v.plan.Plan
	why := fmt.Sprintf("planned for budget %s: %s images/s predicted", budget, trimFloat(p.PredictedTokensPerSecond))
	if p.ExpectedAccuracy > 0 {
		why += fmt.Sprintf(", %.1f%% validation accuracy", 100*p.ExpectedAccuracy)
	}
	if v.plan.Error != "" {
		why += "; nothing fits the budget (" + v.plan.Error + "), so the smallest runs"
	}
	return fmt.Sprintf("mix %s (%s)", p.Spec, why)
}

// mixSpec writes a mix's names as a spec: one name when every layer has it.
func mixSpec(names []string) string {
	if len(names) > 0 && len(slices.Compact(slices.Clone(names))) == 1 {
		return names[0]
	}
	return strings.Join(names, ",")
}

func trimFloat(x float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", x), ".0") }

// classNames reads the header's meta "classes" (comma-separated, written
// by training); a class without a name is "class N".
func classNames(h *weights.Header) []string {
	names := strings.Split(h.Meta["classes"], ",")
	if h.Meta["classes"] == "" || len(names) != h.Config.Vocab {
		names = make([]string, h.Config.Vocab)
		for i := range names {
			names[i] = fmt.Sprintf("class %d", i)
		}
	}
	return names
}

// rankedClass is one line of classify's table.
type rankedClass struct {
	Class int     `json:"class"`
	Name  string  `json:"name"`
	Prob  float32 `json:"prob"`
}

// topClasses returns the n most likely classes, most likely first (the
// lower class on ties).
func topClasses(probs []float32, names []string, n int) []rankedClass {
	out := make([]rankedClass, len(probs))
	for i, p := range probs {
		out[i] = rankedClass{Class: i, Name: names[i], Prob: p}
	}
	slices.SortStableFunc(out, func(a, b rankedClass) int {
		switch {
		case a.Prob > b.Prob:
			return -1
		case a.Prob < b.Prob:
			return 1
		}
		return 0
	})
	return out[:min(n, len(out))]
}

func runClassify(args []string) error {
	fs := newFlags("classify", "-model M.matw -image FILE.png [flags]", `Classifies one image with a vision model (MatViT) run by the matedge wasm
module: prints the most likely classes with their probabilities, and one
line to stderr with the mix and backend that ran and why. Class names come
from the file's meta "classes".

`+imageHelp+`

-json prints one object: image, model, mix (one granularity per layer),
backend, class, name, top ([{class, name, prob}]), probs, logits, and
label and label_name for a test:N image (its true class); with -mix auto,
plan (the planner's plan and reasons).`)
	vf := addVisionFlags(fs, "auto")
	imagePath := fs.String("image", "", "the image: a PNG, JPEG or GIF file, or test:N (Fashion-MNIST test image N)")
	top := fs.Int("top", 5, "how many classes to print")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	if *imagePath == "" {
		return fmt.Errorf("-image: give an image file (PNG, JPEG, GIF) or test:N")
	}
	if *top < 1 {
		return fmt.Errorf("-top %d: want at least 1", *top)
	}
	st := newStatus("classify", *vf.quiet)
	defer st.Stop()
	ctx := context.Background()
	v, err := openVision(ctx, st, *vf.model, *vf.wasm, *vf.mix, *vf.backend, *vf.budget)
	if err != nil {
		return err
	}
	defer v.close()
	q, err := readQueryImage(*imagePath, *v.info.Header.Config.Image, *vf.invert, *vf.cache)
	if err != nil {
		return err
	}
	if q.note != "" {
		st.Say("%s: %s", *imagePath, q.note)
	}
	res, err := v.mod.Classify(ctx, q.pixels, *vf.backend, 0)
	if err != nil {
		return err
	}
	st.Say("%s on %s", v.choice(*vf.budget), res.Backend)
	ranked := topClasses(res.Probs, v.classes, *top)
	if *vf.asJSON {
		out := struct {
			Image     string        `json:"image"`
			Model     string        `json:"model"`
			Mix       []string      `json:"mix"`
			Backend   string        `json:"backend"`
			Class     int           `json:"class"`
			Name      string        `json:"name"`
			Top       []rankedClass `json:"top"`
			Probs     []float32     `json:"probs"`
			Logits    []float32     `json:"logits"`
			Label     *int          `json:"label,omitempty"`
			LabelName string        `json:"label_name,omitempty"`
			Plan      *planJSON     `json:"plan,omitempty"`
		}{Image: *imagePath, Model: v.name, Mix: v.mix, Backend: res.Backend, Class: res.Class, Name: v.classes[res.Class],
			Top: ranked, Probs: res.Probs, Logits: res.Logits, Plan: flatPlan(v.plan)}
		if q.label >= 0 {
			out.Label, out.LabelName = &q.label, labelName(v.classes, q.label)
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Printf("%s: %s (%.1f%%)\n", *imagePath, v.classes[res.Class], 100*res.Probs[res.Class])
	for i, r := range ranked {
		fmt.Printf("  %d. %-16s %6.2f%%\n", i+1, r.Name, 100*r.Prob)
	}
	if q.label >= 0 {
		fmt.Printf("true class: %s\n", labelName(v.classes, q.label))
	}
	return nil
}

// labelName names a data set's label with the model's class names.
func labelName(names []string, label int) string {
	if label >= 0 && label < len(names) {
		return names[label]
	}
	return fmt.Sprintf("class %d", label)
}

func runIndex(args []string) error {
	fs := newFlags("index", "-model M.matw -data fashion-mnist -out F.mati [flags]", `Embeds the images of a data set with a vision model run by the matedge wasm
module and writes a retrieval index (.mati, wasm/ABI.md): each image's
embedding (unit length), its label and, with -images, its pixels (for
showing neighbours). The index names the exact weights that built it, so
retrieve and the module's load_index refuse it with another model; any mix
of the same file may query it (the nested encoders share one space).
A progress bar on stderr shows how far it is.

-json prints one object: out, model, data, split, count, dim, mix, dtype,
images, model_id, bytes, seconds, images_per_second and accuracy (the
encoder's own classification of the indexed images against their labels).`)
	modelPath := fs.String("model", "", "a vision model's weights file (.matw)")
	wasmPath := fs.String("wasm", "", "matedge.wasm to run; empty finds it next to this program or in $"+host.ModuleEnv)
	data := fs.String("data", "fashion-mnist", "the image set: fashion-mnist")
	split := fs.String("split", "train", "train (60,000 images) or test (10,000)")
	limit := fs.Int("limit", 0, "index only the first N images; 0 indexes all")
	mix := fs.String("mix", "XL", "the encoder: S, M, L, XL or one granularity per layer; XL embeds best")
	backend := fs.String("backend", "cpu", "cpu, gpu or auto")
	images := fs.Bool("images", false, "store each image's pixels (u8) too, for showing neighbours")
	dtype := fs.String("dtype", "f32", "how embeddings are stored: f32, or f16 (half the bytes)")
	out := fs.String("out", "", "the index file to write (.mati)")
	cache := fs.String("cache", train.DefaultCache(), "where to download and extract the image set when it is not installed")
	asJSON := fs.Bool("json", false, "print one JSON object (fields: -help)")
	quiet := fs.Bool("q", false, "print nothing to stderr but errors")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	switch {
	case *out == "":
		return fmt.Errorf("-out: give the index file to write (F.mati)")
	case !train.IsImageSet(*data):
		return fmt.Errorf("-data %q: the only image set is fashion-mnist", *data)
	case *split != "train" && *split != "test":
		return fmt.Errorf("-split %q: want train or test", *split)
	case *limit < 0:
		return fmt.Errorf("-limit %d: want a count ≥ 0", *limit)
	case *dtype != "f32" && *dtype != "f16":
		return fmt.Errorf("-dtype %q: want f32 or f16", *dtype)
	case *mix == "auto":
		return fmt.Errorf("-mix auto: an index is built once for every device; give a mix (XL embeds best)")
	}
	st := newStatus("index", *quiet)
	defer st.Stop()
	ctx := context.Background()
	v, err := openVision(ctx, st, *modelPath, *wasmPath, *mix, *backend, "balanced")
	if err != nil {
		return err
	}
	defer v.close()
	st.Stage("reading %s", *data)
	trainSet, testSet, err := train.LoadImages(*data, *cache)
	if err != nil {
		return err
	}
	set := trainSet
	if *split == "test" {
		set = testSet
	}
	if *limit > 0 && *limit < set.Len() {
		set = set.Slice(0, *limit)
	}
	h := v.info.Header
	im := h.Config.Image
	if set.Image.Size != im.Size || set.Image.Channels != im.Channels {
		return fmt.Errorf("%s: the model takes %d×%d images of %d channels, %s's are %d×%d of %d", v.name,
			im.Size, im.Size, im.Channels, *data, set.Image.Size, set.Image.Size, set.Image.Channels)
	}
	ix := &weights.Index{IndexHeader: weights.IndexHeader{ModelID: weights.ModelID(h), Mix: v.mix, Dim: h.Config.Dim,
		Count: set.Len(), Classes: set.Classes, Labels: set.Labels, DType: *dtype}}
	if *images {
		ix.Image = &weights.IndexImage{Size: im.Size, Channels: im.Channels}
		ix.Pixels = make([]byte, 0, set.Len()*im.Pixels())
	}
	ix.Embeddings = make([]float32, 0, set.Len()*h.Config.Dim)
	st.Idle()
	bar := newCountBar("index", "images", set.Len(), *quiet)
	start := time.Now()
	correct := 0
	for i := range set.Len() {
		px := set.At(i)
		res, err := v.mod.Classify(ctx, px, *backend, 0)
		if err != nil {
			bar.done()
			return fmt.Errorf("image %d: %w", i, err)
		}
		if res.Class == set.Labels[i] {
			correct++
		}
		ix.Embeddings = append(ix.Embeddings, res.Embedding...)
		if *images {
			for _, x := range px {
				ix.Pixels = append(ix.Pixels, uint8(min(255, max(0, x*255+0.5))))
			}
		}
		bar.update(i + 1)
	}
	bar.done()
	seconds := time.Since(start).Seconds()
	var buf bytes.Buffer
	if err := weights.WriteIndex(&buf, ix); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	accuracy := float64(correct) / float64(max(1, set.Len()))
	st.Say("wrote %s: %d images of %s/%s embedded by %s (%s), %s; the encoder classifies %.2f%% of them right",
		*out, set.Len(), *data, *split, v.spec, *dtype, humanBytes(int64(buf.Len())), 100*accuracy)
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"out": *out, "model": v.name, "data": *data, "split": *split, "count": set.Len(), "dim": ix.Dim, "mix": v.mix,
			"dtype": *dtype, "images": *images, "model_id": ix.ModelID, "bytes": buf.Len(), "seconds": seconds,
			"images_per_second": float64(set.Len()) / seconds, "accuracy": accuracy,
		})
	}
	return nil
}

// maxIndexFile is the largest index retrieve hands the module: one alloc.
const maxIndexFile = 1 << 30

func runRetrieve(args []string) error {
	fs := newFlags("retrieve", "-model M.matw -index F.mati -image FILE.png [flags]", `Finds the k images of a retrieval index (matedge index) nearest to a query
image by cosine similarity of their embeddings, run by the matedge wasm
module: prints each neighbour's position in the index, label and score,
and the 1-NN class (the nearest neighbour's label). The query may be
embedded by any mix of the model that built the index (-mix S queries an
index of XL embeddings); an index built by another model is refused.

`+imageHelp+`

-json prints one object: image, model, index, mix, backend, neighbors
([{index, label, name, score}]), nn_class, nn_name, class and name (the
classifier's own answer), and label and label_name for a test:N image.`)
	vf := addVisionFlags(fs, "auto")
	indexPath := fs.String("index", "", "the retrieval index (.mati) built by matedge index with this model")
	imagePath := fs.String("image", "", "the query: a PNG, JPEG or GIF file, or test:N (Fashion-MNIST test image N)")
	k := fs.Int("k", 5, "neighbours to print")
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (see -help)", rest[0])
	}
	switch {
	case *indexPath == "":
		return fmt.Errorf("-index: give a retrieval index (.mati) built by matedge index")
	case *imagePath == "":
		return fmt.Errorf("-image: give an image file (PNG, JPEG, GIF) or test:N")
	case *k < 1 || *k > weights.MaxIndexCount:
		return fmt.Errorf("-k %d: want 1 to %d", *k, weights.MaxIndexCount)
	}
	fi, err := os.Stat(*indexPath)
	if err != nil {
		return err
	}
	if fi.Size() > maxIndexFile {
		return fmt.Errorf("%s: %s; the module takes an index of at most %s", *indexPath, humanBytes(fi.Size()), humanBytes(maxIndexFile))
	}
	st := newStatus("retrieve", *vf.quiet)
	defer st.Stop()
	ctx := context.Background()
	v, err := openVision(ctx, st, *vf.model, *vf.wasm, *vf.mix, *vf.backend, *vf.budget)
	if err != nil {
		return err
	}
	defer v.close()
	b, err := os.ReadFile(*indexPath)
	if err != nil {
		return err
	}
	info, err := v.mod.LoadIndex(ctx, b)
	if err != nil {
		return fmt.Errorf("%s: %w", *indexPath, err)
	}
	q, err := readQueryImage(*imagePath, *v.info.Header.Config.Image, *vf.invert, *vf.cache)
	if err != nil {
		return err
	}
	if q.note != "" {
		st.Say("%s: %s", *imagePath, q.note)
	}
	res, err := v.mod.Classify(ctx, q.pixels, *vf.backend, *k)
	if err != nil {
		return err
	}
	st.Say("%s on %s; index %s: %d images embedded by %s", v.choice(*vf.budget), res.Backend, *indexPath, info.Count, mixSpec(info.Mix))
	type neighbor struct {
		Index int     `json:"index"`
		Label int     `json:"label"`
		Name  string  `json:"name"`
		Score float32 `json:"score"`
	}
	var ns []neighbor
	for _, n := range res.Neighbors {
		ns = append(ns, neighbor{n.Index, n.Label, labelName(info.Classes, n.Label), n.Score})
	}
	nnClass, nnName := -1, ""
	if len(ns) > 0 {
		nnClass, nnName = ns[0].Label, ns[0].Name
	}
	if *vf.asJSON {
		out := struct {
			Image     string     `json:"image"`
			Model     string     `json:"model"`
			Index     string     `json:"index"`
			Mix       []string   `json:"mix"`
			Backend   string     `json:"backend"`
			Neighbors []neighbor `json:"neighbors"`
			NNClass   int        `json:"nn_class"`
			NNName    string     `json:"nn_name"`
			Class     int        `json:"class"`
			Name      string     `json:"name"`
			Label     *int       `json:"label,omitempty"`
			LabelName string     `json:"label_name,omitempty"`
			Plan      *planJSON  `json:"plan,omitempty"`
		}{Image: *imagePath, Model: v.name, Index: *indexPath, Mix: v.mix, Backend: res.Backend, Neighbors: ns,
			NNClass: nnClass, NNName: nnName, Class: res.Class, Name: v.classes[res.Class], Plan: flatPlan(v.plan)}
		if out.Neighbors == nil {
			out.Neighbors = []neighbor{}
		}
		if q.label >= 0 {
			out.Label, out.LabelName = &q.label, labelName(info.Classes, q.label)
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Printf("%s: %d nearest of %d\n", *imagePath, len(ns), info.Count)
	for i, n := range ns {
		fmt.Printf("  %d. #%-7d %-16s %.4f\n", i+1, n.Index, n.Name, n.Score)
	}
	if nnClass >= 0 {
		fmt.Printf("1-NN class: %s (the classifier says %s)\n", nnName, v.classes[res.Class])
	} else {
		fmt.Println("1-NN class: none (the index is empty)")
	}
	if q.label >= 0 {
		fmt.Printf("true class: %s\n", labelName(info.Classes, q.label))
	}
	return nil
}

// countBar shows progress through n items on stderr: a redrawn bar on a
// terminal, a line every 10 s otherwise; nothing when quiet.
type countBar struct {
	command, unit string
	n             int
	terminal      bool
	quiet         bool
	start, last   time.Time
}

func newCountBar(command, unit string, n int, quiet bool) *countBar {
	fi, err := os.Stderr.Stat()
	now := time.Now()
	return &countBar{command: command, unit: unit, n: n, quiet: quiet, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0, start: now, last: now}
}

func (b *countBar) update(done int) {
	if b.quiet {
		return
	}
	now := time.Now()
	if done < b.n && now.Sub(b.last) < 200*time.Millisecond || !b.terminal && done < b.n && now.Sub(b.last) < 10*time.Second {
		return
	}
	b.last = now
	const width = 24
	filled := width * done / max(1, b.n)
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 1e-9)
	eta := time.Duration(float64(b.n-done) / max(rate, 1e-9) * float64(time.Second)).Round(time.Second)
	line := fmt.Sprintf("matedge %s: %s %d/%d %s | %.0f %s/s | ETA %s", b.command,
		strings.Repeat("█", filled)+strings.Repeat("·", width-filled), done, b.n, b.unit, rate, b.unit, eta)
	if b.terminal {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(os.Stderr, line)
	}
}

// done ends the bar's line on a terminal.
func (b *countBar) done() {
	if !b.quiet && b.terminal {
		fmt.Fprintln(os.Stderr)
	}
}
