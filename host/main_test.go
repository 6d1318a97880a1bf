package host

import (
	"os"
	"testing"

	"github.com/matedge/matedge/host/internal/testmodule"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testmodule.Cleanup()
	os.Exit(code)
}
