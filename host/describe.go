package host

// The text descriptions of a device's capabilities and of a plan, which
// matedge plan prints and any other tool may.

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/matedge/matedge/wasm/planner"
	"github.com/matedge/matedge/weights"
)

// WriteCapabilities describes a device's capabilities, one line per item,
// under a heading that names their source, then the notes.
func WriteCapabilities(w io.Writer, caps planner.Capabilities, source string, notes []string) {
	fmt.Fprintf(w, "Capabilities (%s):\n", source)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-10s %s\n", k, fmt.Sprintf(format, args...)) }
	if a := caps.Adapter; a != nil {
		var names, kind []string
		for _, s := range []string{a.Description, a.Vendor, a.Architecture} {
			if s != "" {
				names = append(names, s)
			}
		}
		for _, s := range []string{a.Type, a.Backend} {
			if s != "" {
				kind = append(kind, s)
			}
		}
		if a.Fallback {
			kind = append(kind, "fallback")
		}
		row("adapter", "%s (%s)", strings.Join(names, ", "), strings.Join(kind, ", "))
		l := a.Limits
		row("limits", "buffer %s, storage binding %s, %d storage buffers per stage, workgroup storage %s, %d invocations",
			weights.HumanBytes(int64(l.MaxBufferSize)), weights.HumanBytes(int64(l.MaxStorageBufferBindingSize)), l.MaxStorageBuffersPerShaderStage,
			weights.HumanBytes(int64(l.MaxComputeWorkgroupStorageSize)), l.MaxComputeInvocationsPerWorkgroup)
		features := "none"
		if len(a.Features) > 0 {
			features = strings.Join(a.Features, ", ")
		}
		row("features", "%s", features)
	} else {
		row("adapter", "none")
	}
	row("memory", "%s", orUnknown(caps.DeviceMemoryBytes > 0, weights.HumanBytes(caps.DeviceMemoryBytes)))
	row("cores", "%s", orUnknown(caps.LogicalCores > 0, strconv.Itoa(caps.LogicalCores)))
	row("storage", "%s", orUnknown(caps.StorageQuotaBytes > 0, weights.HumanBytes(caps.StorageQuotaBytes)))
	n := caps.Network
	network := strings.TrimSpace(fmt.Sprintf("%s %s", n.EffectiveType, orUnknown(n.DownlinkMbps > 0, fmt.Sprintf("%g Mbit/s", n.DownlinkMbps))))
	if n.SaveData {
		network += ", save-data"
	}
	row("network", "%s", network)
	if len(caps.Benchmarks) == 0 {
		row("benchmark", "none")
	}
	for _, b := range caps.Benchmarks {
		overhead := ""
		if b.StepOverheadMicros > 0 {
			overhead = fmt.Sprintf(" + %.3g ms per step", b.StepOverheadMicros/1000)
		}
		if b.DispatchMicros > 0 {
			overhead += fmt.Sprintf(" + %.3g µs per dispatch", b.DispatchMicros)
		}
		if b.RowNanos > 0 {
			overhead += fmt.Sprintf(" + %.3g ns per matrix row", b.RowNanos)
		}
		row("benchmark", "%s: %.3g GB/s, %.3g GFLOP/s%s (%s; %.0f ms timed)", b.Backend, b.GBps, b.GFLOPs, overhead, b.Method, b.DurationMillis)
	}
	for _, note := range notes {
		row("note", "%s", note)
	}
}

// WritePlan describes a plan for the model h describes: mix, backend,
// download, memory, speed and quality, then the reasons.
func WritePlan(w io.Writer, h *weights.Header, p planner.Plan) {
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-10s %s\n", k, fmt.Sprintf(format, args...)) }
	row("mix", "%s (%s)", p.Spec, strings.Join(p.MixNames, ","))
	row("backend", "%s, weights %s", p.Backend, p.DType)
	row("download", "%s of the file's %s, in %d byte range(s)", weights.HumanBytes(p.DownloadBytes), weights.HumanBytes(h.DataSize), len(p.Ranges))
	if p.GPUMemoryBytes > 0 {
		row("memory", "%s (%s of it on the GPU)", weights.HumanBytes(p.MemoryBytes), weights.HumanBytes(p.GPUMemoryBytes))
	} else {
		row("memory", "%s", weights.HumanBytes(p.MemoryBytes))
	}
	how := "assumed rates"
	if p.SpeedMeasured {
		how = "from the " + p.Backend + " benchmark"
	}
	unit, per := "tokens/s", "token"
	if h.IsVision() {
		unit, per = "images/s", "image"
	}
	row("speed", "%.3g %s predicted (%s)", p.PredictedTokensPerSecond, unit, how)
	if p.ExpectedAccuracy > 0 {
		row("accuracy", "%.2f%% on the validation images", 100*p.ExpectedAccuracy)
	}
	if p.ExpectedLoss > 0 {
		row("loss", "%.3f nats/%s expected", p.ExpectedLoss, per)
	} else {
		row("loss", "unknown (no quality table); %d non-embedding parameters", p.NonEmbeddingParams)
	}
	fmt.Fprintln(w, "\nWhy:")
	for _, r := range p.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}

func orUnknown(known bool, s string) string {
	if !known {
		return "unknown"
	}
	return s
}
