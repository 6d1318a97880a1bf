package engine

import "fmt"

// state is where an engine is in its life: which calls it takes next
// (wasm/ABI.md, "Exports, in calling order"). Allowed is the one place that
// checks a call against it. The calls that move it:
//
//	call          from                              to
//	LoadHeader    any                               headerLoaded
//	SetMix        headerLoaded, mixSet, sequence    mixSet (a sequence not prompted yet is dropped)
//	SetMix        prompted, stepping                unchanged: the sequence runs on with the mix it
//	                                                was reset with; a new prompt needs a reset anyway
//	Reset         mixSet, sequence, prompted,       sequence
//	              stepping
//	Prompt        sequence                          prompted
//	Step          prompted                          stepping once the backend has started the step
//	Step          stepping                          prompted once the token is collected, or the
//	                                                backend failed
//
// Any other failing call leaves the state as it was. A vision model never
// gets past mixSet: the text calls refuse it whatever its state.
type state uint8

const (
	noModel      state = iota // before LoadHeader
	headerLoaded              // a header: the weights may be fed, a mix chosen
	mixSet                    // a mix chosen and no sequence waiting for its prompt
	sequence                  // Reset started a sequence on the mix; it waits for its prompt
	prompted                  // the sequence has its prompt: Step runs it
	stepping                  // a step has started whose token is not collected yet (a GPU readback)
)

func (s state) String() string {
	switch s {
	case noModel:
		return "no model"
	case headerLoaded:
		return "header loaded"
	case mixSet:
		return "mix set"
	case sequence:
		return "sequence"
	case prompted:
		return "prompted"
	case stepping:
		return "stepping"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Call names an export whose order matters, for Allowed. Calls not listed
// (abi_version, alloc, load_header, speculation, bench_kernel and the
// accessors) are allowed in every state.
type Call uint8

const (
	CallFeed Call = iota
	CallSetMix
	CallReset
	CallPrompt
	CallStep
	CallWidths
	CallPlan
	CallClassify
	CallLoadIndex
	CallIndexImage
)

// callNames are the export names, for messages.
var callNames = [...]string{
	CallFeed: "feed", CallSetMix: "set_mix", CallReset: "reset", CallPrompt: "prompt", CallStep: "step",
	CallWidths: "widths", CallPlan: "plan", CallClassify: "classify", CallLoadIndex: "load_index", CallIndexImage: "index_image",
}

func (c Call) String() string {
	if int(c) < len(callNames) {
		return callNames[c]
	}
	return fmt.Sprintf("call(%d)", uint8(c))
}

// Allowed reports whether call may be made now: nil, or an error wrapping
// ErrState that says what must come first. The text calls (reset, prompt,
// step, widths) are refused on a vision model and the vision calls
// (classify, load_index, index_image) on a language model, whatever the state.
func (e *Engine) Allowed(call Call) error {
	switch call {
	case CallReset, CallPrompt, CallStep, CallWidths:
		if err := e.textOnly(call.String()); err != nil {
			return err
		}
	case CallClassify, CallLoadIndex, CallIndexImage:
		if err := e.visionOnly(call.String()); err != nil {
			return err
		}
	}
	s := e.state
	switch call {
	case CallLoadIndex: // visionOnly has refused it before load_header
	case CallFeed, CallSetMix, CallPlan:
		if s == noModel {
			return fmt.Errorf("%w: %s before load_header", ErrState, call)
		}
	case CallReset:
		if s < mixSet {
			return fmt.Errorf("%w: reset before set_mix", ErrState)
		}
	case CallClassify:
		if s < mixSet {
			return fmt.Errorf("%w: classify before set_mix", ErrState)
		}
	case CallPrompt:
		if s > sequence {
			return fmt.Errorf("%w: one prompt per reset", ErrState)
		}
		if s != sequence {
			return fmt.Errorf("%w: prompt before reset", ErrState)
		}
	case CallStep:
		if s < prompted {
			return fmt.Errorf("%w: step before prompt", ErrState)
		}
	case CallWidths:
		// A sequence has run a step once a token has gone into its cache.
		if s < prompted || e.pos == 0 {
			return fmt.Errorf("%w: widths before the first step", ErrState)
		}
	case CallIndexImage:
		switch {
		case e.index == nil:
			return fmt.Errorf("%w: index_image before load_index", ErrState)
		case e.index.Image == nil:
			return fmt.Errorf("%w: the index stores no images (build it with matedge index -images)", ErrState)
		}
	default:
		return fmt.Errorf("%w: unknown call %s", ErrArg, call)
	}
	return nil
}
