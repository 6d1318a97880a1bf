package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteModel writes a model's runs as a table, and the speed-ups.
func WriteModel(w io.Writer, bm Model) {
	sampling := "greedy"
	if bm.Temperature > 0 {
		sampling = fmt.Sprintf("sampled at temperature %g", bm.Temperature)
	}
	fmt.Fprintf(w, "%s: vocab %d, dim %d, %d layers, FFN widths %v; decoding %s\n", bm.Name, bm.Config.Vocab, bm.Config.Dim, bm.Config.Layers, bm.Config.FFNWidths, sampling)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tmix\tMFLOP/token\tprefill tok/s\tdecode tok/s\tplanner predicted\t")
	for _, r := range bm.Runs {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t–\t–\t–\t  failed: %s\n", r.Backend, r.Mix, r.FLOPsPerToken/1e6, r.Error)
			continue
		}
		predicted := "–"
		if r.PredictedTPS > 0 {
			predicted = fmt.Sprintf("%.1f (%.2f×)", r.PredictedTPS, r.PredictedTPS/r.DecodeTPS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%.1f\t%s\t\n", r.Backend, r.Mix, r.FLOPsPerToken/1e6, r.PrefillTPS, r.DecodeTPS, predicted)
	}
	tw.Flush()
	for _, s := range bm.Speedups {
		fmt.Fprintf(w, "decode speed-up of S over XL on %s: %.2f× realized, %.2f× ideal (FLOP ratio)\n", s.Backend, s.Realized, s.Ideal)
	}
	fmt.Fprintln(w)
}

// WriteKernels writes the GPU kernels' times as a table, or why they were
// skipped.
func WriteKernels(w io.Writer, device string, results []KernelResult, err error) {
	if err != nil {
		fmt.Fprintf(w, "kernels: skipped: %v\n", err)
		return
	}
	fmt.Fprintf(w, "kernels on %s:\n", device)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\tshape\tms\tGFLOP/s\tweight GB/s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.2f\t%.2f\t\n", r.Kernel, r.Shape, r.Seconds*1e3, r.GFLOPs, r.GBs)
	}
	tw.Flush()
}

// WriteCPUKernels writes the module's CPU products as a table.
func WriteCPUKernels(w io.Writer, results []CPUKernelResult) {
	fmt.Fprintln(w, "the module's CPU products (bench_kernel), GFLOP/s: kernels.wasm linked (simd) and not (go)")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\tM×K×N\tsimd\tgo\tsimd/go\tpeer\tsimd/peer\t")
	for _, r := range results {
		peer, ratio := "–", "–"
		if r.Peer > 0 {
			peer, ratio = fmt.Sprintf("%.2f (%s)", r.Peer, r.PeerConfig), fmt.Sprintf("%.2f×", r.SIMD/r.Peer)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.1f×\t%s\t%s\t\n", r.Kernel, r.Shape, r.SIMD, r.Go, r.SIMD/r.Go, peer, ratio)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
