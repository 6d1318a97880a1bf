package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ModuleEnv names the environment variable that points at matedge.wasm.
const ModuleEnv = "MATEDGE_WASM"

// FindModule returns the path of matedge.wasm: $MATEDGE_WASM, else
// ../dist/matedge.wasm next to the running executable (the layout ./build.sh
// makes: bin/matedge and dist/matedge.wasm), else dist/matedge.wasm in the
// working directory.
func FindModule() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("host: %s=%s: %w", ModuleEnv, p, err)
		}
		return p, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), "..", "dist", "matedge.wasm"))
	}
	tried = append(tried, filepath.Join("dist", "matedge.wasm"))
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("host: cannot find matedge.wasm (looked in " + fmt.Sprint(tried) + "); run ./build.sh or set " + ModuleEnv)
}
