package webgpu

import (
	"errors"
	"fmt"
)

// ABIVersion is the version of the "webgpu" import module (ABI.md). The guest
// calls abi_version at Open and refuses a host with another.
const ABIVersion = 1

// ImportModule is the wasm import module name of the ABI.
const ImportModule = "webgpu"

// BindingSize is the size of one binding record in dispatch's bindings array:
// u32 buffer, u32 zero, u64 offset, u64 size, little-endian.
const BindingSize = 24

// Status codes of the ABI: imports return a non-negative result on success
// and one of these on failure; last_error then holds the message.
const (
	CodeNoAdapter int32 = -1
	CodeHandle    int32 = -2
	CodeRange     int32 = -3
	CodeArgument  int32 = -4
	CodeGPU       int32 = -5
	CodeVersion   int32 = -6
)

var codeErrors = map[int32]error{
	CodeNoAdapter: ErrNoAdapter,
	CodeHandle:    ErrHandle,
	CodeRange:     ErrRange,
	CodeArgument:  ErrArgument,
	CodeGPU:       ErrGPU,
	CodeVersion:   ErrVersion,
}

// ErrorCode is the ABI status code for err (CodeGPU for errors of no known kind).
func ErrorCode(err error) int32 {
	for code, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return CodeGPU
}

// CodeError is the error for a negative ABI status code, with the host's message.
func CodeError(code int32, message string) error {
	sentinel, ok := codeErrors[code]
	if !ok {
		sentinel = ErrGPU
	}
	if message == "" {
		return fmt.Errorf("%w (code %d)", sentinel, code)
	}
	return fmt.Errorf("%w (code %d): %s", sentinel, code, message)
}
