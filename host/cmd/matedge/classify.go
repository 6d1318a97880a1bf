package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
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

// visionModel is a vision model loaded into the module with one mix, and
// the plan that chose the mix (nil for -mix).
type visionModel struct {
	*host.VisionModel
	plan *abi.PlanResult
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
	hv, err := host.OpenVision(ctx, path, wasmPath)
	if err != nil {
		return nil, err
	}
	v := &visionModel{VisionModel: hv}
	fail := func(err error) (*visionModel, error) {
		v.Close()
		return nil, err
	}
	if mix != "auto" {
		if _, err := v.Info.Header.Config.ParseMix(mix); err != nil {
			return fail(fmt.Errorf("-mix: %w", err))
		}
	} else {
		st.Stage("measuring this device to plan the encoder")
		if v.plan, err = host.PlanFor(ctx, v.Module, wasmPath, budget, "auto", "cpu"); err != nil {
			return fail(err)
		}
		if v.plan.Plan == nil || v.plan.Plan.Spec == "" {
			return fail(fmt.Errorf("-mix auto: %s", v.plan.Error))
		}
		mix = v.plan.Plan.Spec
	}
	st.Stage("loading %s (mix %s)", v.Name, mix)
	if err := v.Fetch(ctx, mix); err != nil {
		return fail(err)
	}
	st.Idle()
	return v, nil
}

// choice says which mix runs and why, for the stderr line.
func (v *visionModel) choice(budget string) string {
	if v.plan == nil {
		return fmt.Sprintf("mix %s (-mix)", v.Spec)
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

func trimFloat(x float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", x), ".0") }

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
	defer v.Close()
	q, err := readQueryImage(*imagePath, *v.Info.Header.Config.Image, *vf.invert, *vf.cache)
	if err != nil {
		return err
	}
	if q.note != "" {
		st.Say("%s: %s", *imagePath, q.note)
	}
	res, err := v.Module.Classify(ctx, q.pixels, *vf.backend, 0)
	if err != nil {
		return err
	}
	st.Say("%s on %s", v.choice(*vf.budget), res.Backend)
	ranked := host.TopClasses(res.Probs, v.Classes, *top)
	if *vf.asJSON {
		out := struct {
			Image     string             `json:"image"`
			Model     string             `json:"model"`
			Mix       []string           `json:"mix"`
			Backend   string             `json:"backend"`
			Class     int                `json:"class"`
			Name      string             `json:"name"`
			Top       []host.RankedClass `json:"top"`
			Probs     []float32          `json:"probs"`
			Logits    []float32          `json:"logits"`
			Label     *int               `json:"label,omitempty"`
			LabelName string             `json:"label_name,omitempty"`
			Plan      *planJSON          `json:"plan,omitempty"`
		}{Image: *imagePath, Model: v.Name, Mix: v.Mix, Backend: res.Backend, Class: res.Class, Name: v.Classes[res.Class],
			Top: ranked, Probs: res.Probs, Logits: res.Logits, Plan: flatPlan(v.plan)}
		if q.label >= 0 {
			out.Label, out.LabelName = &q.label, host.LabelName(v.Classes, q.label)
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Printf("%s: %s (%.1f%%)\n", *imagePath, v.Classes[res.Class], 100*res.Probs[res.Class])
	for i, r := range ranked {
		fmt.Printf("  %d. %-16s %6.2f%%\n", i+1, r.Name, 100*r.Prob)
	}
	if q.label >= 0 {
		fmt.Printf("true class: %s\n", host.LabelName(v.Classes, q.label))
	}
	return nil
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
	defer v.Close()
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
	if im := v.Info.Header.Config.Image; set.Image.Size != im.Size || set.Image.Channels != im.Channels {
		return fmt.Errorf("%s: the model takes %d×%d images of %d channels, %s's are %d×%d of %d", v.Name,
			im.Size, im.Size, im.Channels, *data, set.Image.Size, set.Image.Size, set.Image.Channels)
	}
	st.Idle()
	bar := newCountBar("index", "images", set.Len(), *quiet)
	start := time.Now()
	ix, accuracy, err := v.BuildIndex(ctx, set, host.IndexOptions{Backend: *backend, DType: *dtype, Images: *images, Progress: bar.update})
	bar.done()
	if err != nil {
		return err
	}
	seconds := time.Since(start).Seconds()
	var buf bytes.Buffer
	if err := weights.WriteIndex(&buf, ix); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	st.Say("wrote %s: %d images of %s/%s embedded by %s (%s), %s; the encoder classifies %.2f%% of them right",
		*out, set.Len(), *data, *split, v.Spec, *dtype, weights.HumanBytes(int64(buf.Len())), 100*accuracy)
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"out": *out, "model": v.Name, "data": *data, "split": *split, "count": set.Len(), "dim": ix.Dim, "mix": v.Mix,
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
		return fmt.Errorf("%s: %s; the module takes an index of at most %s", *indexPath, weights.HumanBytes(fi.Size()), weights.HumanBytes(maxIndexFile))
	}
	st := newStatus("retrieve", *vf.quiet)
	defer st.Stop()
	ctx := context.Background()
	v, err := openVision(ctx, st, *vf.model, *vf.wasm, *vf.mix, *vf.backend, *vf.budget)
	if err != nil {
		return err
	}
	defer v.Close()
	b, err := os.ReadFile(*indexPath)
	if err != nil {
		return err
	}
	info, err := v.Module.LoadIndex(ctx, b)
	if err != nil {
		return fmt.Errorf("%s: %w", *indexPath, err)
	}
	q, err := readQueryImage(*imagePath, *v.Info.Header.Config.Image, *vf.invert, *vf.cache)
	if err != nil {
		return err
	}
	if q.note != "" {
		st.Say("%s: %s", *imagePath, q.note)
	}
	res, err := v.Module.Classify(ctx, q.pixels, *vf.backend, *k)
	if err != nil {
		return err
	}
	st.Say("%s on %s; index %s: %d images embedded by %s", v.choice(*vf.budget), res.Backend, *indexPath, info.Count, model.SpecOfNames(info.Mix))
	return printRetrieved(os.Stdout, retrieved{image: *imagePath, index: *indexPath, v: v, res: res, info: info, label: q.label}, *vf.asJSON)
}

// neighbor is one line of retrieve's answer.
type neighbor struct {
	Index int     `json:"index"`
	Label int     `json:"label"`
	Name  string  `json:"name"`
	Score float32 `json:"score"`
}

// retrieved is what retrieve prints: the query, the model and the index,
// the module's answer, and the query's true label (-1 when unknown).
type retrieved struct {
	image, index string
	v            *visionModel
	res          *abi.ImageResult
	info         *abi.IndexInfo
	label        int
}

// printRetrieved prints the neighbours as a list, or as one JSON object.
func printRetrieved(w io.Writer, r retrieved, asJSON bool) error {
	var ns []neighbor
	for _, n := range r.res.Neighbors {
		ns = append(ns, neighbor{n.Index, n.Label, host.LabelName(r.info.Classes, n.Label), n.Score})
	}
	nnClass, nnName := -1, ""
	if len(ns) > 0 {
		nnClass, nnName = ns[0].Label, ns[0].Name
	}
	if asJSON {
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
		}{Image: r.image, Model: r.v.Name, Index: r.index, Mix: r.v.Mix, Backend: r.res.Backend, Neighbors: ns,
			NNClass: nnClass, NNName: nnName, Class: r.res.Class, Name: r.v.Classes[r.res.Class], Plan: flatPlan(r.v.plan)}
		if out.Neighbors == nil {
			out.Neighbors = []neighbor{}
		}
		if r.label >= 0 {
			label := r.label
			out.Label, out.LabelName = &label, host.LabelName(r.info.Classes, r.label)
		}
		return json.NewEncoder(w).Encode(out)
	}
	fmt.Fprintf(w, "%s: %d nearest of %d\n", r.image, len(ns), r.info.Count)
	for i, n := range ns {
		fmt.Fprintf(w, "  %d. #%-7d %-16s %.4f\n", i+1, n.Index, n.Name, n.Score)
	}
	if nnClass >= 0 {
		fmt.Fprintf(w, "1-NN class: %s (the classifier says %s)\n", nnName, r.v.Classes[r.res.Class])
	} else {
		fmt.Fprintln(w, "1-NN class: none (the index is empty)")
	}
	if r.label >= 0 {
		fmt.Fprintf(w, "true class: %s\n", host.LabelName(r.info.Classes, r.label))
	}
	return nil
}
