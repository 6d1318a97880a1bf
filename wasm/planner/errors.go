package planner

import (
	"errors"
	"fmt"
)

// Constraint names a limit a plan must respect.
type Constraint string

// The constraints, in the order a plan is checked against them.
const (
	ConstraintBackend    Constraint = "backend"           // the budget asks for the GPU and there is no adapter
	ConstraintBinding    Constraint = "binding"           // a buffer the GPU must bind whole is over maxStorageBufferBindingSize
	ConstraintWasmMemory Constraint = "wasm-memory"       // more than a wasm32 module can address
	ConstraintMemory     Constraint = "memory"            // over the memory budget or the device's allowance
	ConstraintDownload   Constraint = "download"          // over the download budget, in bytes or in seconds at the downlink
	ConstraintSpeed      Constraint = "tokens-per-second" // predicted slower than the target
)

// ErrNoFit is what every *ConstraintError wraps: errors.Is(err, ErrNoFit)
// tells "the device or the budget is too small" from a malformed input.
var ErrNoFit = errors.New("planner: does not fit")

// ConstraintError says which constraint a mix breaks. Choose returns one for
// the smallest submodel when nothing fits; since every cost grows with every
// layer's granularity, no other mix can meet a limit the smallest misses.
type ConstraintError struct {
	Constraint Constraint `json:"constraint"`
	Backend    string     `json:"backend"`
	Mix        string     `json:"mix"` // the mix tried, as ParseMix reads it
	// Need is what the mix needs and Limit what is allowed, in Unit:
	// "bytes", or "tokens/s" where Need is the predicted speed and Limit
	// the target, a minimum. Both are 0 for the backend constraint.
	Need   float64 `json:"need"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit,omitempty"`
	Detail string  `json:"detail"`
	// Smallest is the smallest submodel on Backend with its costs and
	// reasons, for a caller that wants to run something anyway. Set by Choose.
	Smallest *Plan `json:"smallest,omitempty"`
}

func (e *ConstraintError) Error() string {
	return fmt.Sprintf("planner: %s on %s: %s (constraint %s)", e.Mix, e.Backend, e.Detail, e.Constraint)
}

// Unwrap makes errors.Is(err, ErrNoFit) true.
func (e *ConstraintError) Unwrap() error { return ErrNoFit }
