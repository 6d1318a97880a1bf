package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/matedge/matedge/weights"
)

func init() {
	register(command{name: "inspect", summary: "show a weights file: config, tensors, bytes per submodel", run: runInspect})
}

func runInspect(args []string) error {
	fs := newFlags("inspect", "PATH [-json] [-upgrade NEW.matw]", `Reads and validates a .matw weights file (every checksum included) and prints
its config, its tensors and the byte ranges each uniform granularity needs.
A file of an older format version gets a warning; -upgrade rewrites it in the
current one, data bytes unchanged.`)
	asJSON := fs.Bool("json", false, "print one JSON object")
	upgrade := fs.String("upgrade", "", "also write the file in the current format version to this `path` (tensor bytes unchanged)")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) != 1 {
		fs.Usage()
		return fmt.Errorf("want one weights file, got %d arguments", len(paths))
	}
	f, size, err := weights.OpenFile(paths[0])
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := weights.Verify(f, size)
	if err != nil {
		return fmt.Errorf("%s: %w", paths[0], err)
	}
	if h.FormatVersion < weights.Version {
		fmt.Fprintf(os.Stderr, "matedge inspect: warning: %s is format version %d, whose header has no checksum: damage to the header (the tokenizer, the config) would go unnoticed; rewrite it with -upgrade NEW.matw\n", paths[0], h.FormatVersion)
	}
	if *upgrade != "" {
		if err := weights.UpgradeFile(f, size, *upgrade); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "matedge inspect: wrote %s (format version %d)\n", *upgrade, weights.Version)
	}
	c := h.Config
	grans := h.GranularityCosts()
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(struct {
			Path          string                    `json:"path"`
			FileSize      int64                     `json:"file_size"`
			Header        *weights.Header           `json:"header"`
			Granularities []weights.GranularityCost `json:"granularities"`
		}{paths[0], size, h, grans})
	}
	fmt.Printf("%s: matedge weights v%d, %d bytes (header %d, data %d), all checksums good\n",
		paths[0], h.FormatVersion, size, h.DataStart, h.DataSize)
	fmt.Printf("config: vocab %d, dim %d, %d layers, %d heads, context %d, FFN widths %v\n",
		c.Vocab, c.Dim, c.Layers, c.Heads, c.Context, c.FFNWidths)
	fmt.Printf("tokenizer: byte-level BPE, %d merges\n", len(h.Tokenizer.Merges))
	for _, k := range slices.Sorted(maps.Keys(h.Meta)) {
		fmt.Printf("meta %s: %s\n", k, h.Meta[k])
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ngranularity\tffn width\tnon-emb params\tbytes\tranges\t")
	for _, g := range grans {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", g.Name, g.FFNWidth, g.NonEmbeddingParams, g.Bytes, len(g.Ranges))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\ntensor\trows\tshape\tgranularity\toffset\tbytes\tcrc32c")
	for _, e := range h.Entries {
		fmt.Fprintf(tw, "%s\t[%d,%d)\t%v\t%s\t%d\t%d\t%08x\n", e.Tensor, e.RowStart, e.RowEnd, e.Shape,
			c.GranularityName(e.Granularity), h.DataStart+e.Offset, e.Length, e.CRC32C)
	}
	return tw.Flush()
}
