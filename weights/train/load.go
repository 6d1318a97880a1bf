package train

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultCache is where corpora that must be downloaded are kept: the user's
// cache directory, else the system's temporary one.
func DefaultCache() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "matedge")
	}
	return filepath.Join(os.TempDir(), "matedge")
}

// LoadCorpus reads and splits a corpus by name: "austen" (Jane Austen's
// novels from Debian's r-cran-janeaustenr, downloaded into cache with apt-get
// when not installed), "opticks" (Newton's Opticks from the Go installation),
// or the path of a text file.
func LoadCorpus(name, cache string) (*Corpus, error) {
	switch name {
	case "austen":
		dir, err := austenDir(cache)
		if err != nil {
			return nil, err
		}
		docs, err := ReadAusten(dir)
		if err != nil {
			return nil, err
		}
		return Split("austen", docs), nil
	case "opticks":
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return nil, fmt.Errorf("opticks: finding GOROOT with `go env GOROOT`: %w", err)
		}
		docs, err := ReadFile(OpticksPath(strings.TrimSpace(string(goroot))))
		if err != nil {
			return nil, err
		}
		return Split("opticks", docs), nil
	}
	docs, err := ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Split(filepath.Base(name), docs), nil
}

// austenDir finds r-cran-janeaustenr's data: installed, already extracted
// into cache, or downloaded now with apt-get download and dpkg-deb -x.
func austenDir(cache string) (string, error) {
	for _, root := range []string{"/", filepath.Join(cache, "janeaustenr")} {
		if dir := filepath.Join(root, AustenDir); fileExists(filepath.Join(dir, "Rdata.rdx")) {
			return dir, nil
		}
	}
	root := filepath.Join(cache, "janeaustenr")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "fetching r-cran-janeaustenr into %s\n", root)
	get := exec.Command("apt-get", "download", "r-cran-janeaustenr")
	get.Dir, get.Stderr = root, os.Stderr
	if err := get.Run(); err != nil {
		return "", fmt.Errorf("austen: apt-get download r-cran-janeaustenr: %w", err)
	}
	debs, _ := filepath.Glob(filepath.Join(root, "r-cran-janeaustenr_*.deb"))
	if len(debs) == 0 {
		return "", errors.New("austen: apt-get download left no r-cran-janeaustenr_*.deb")
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("austen: dpkg-deb -x: %w: %s", err, out)
	}
	return filepath.Join(root, AustenDir), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
