package train

import (
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
	return debDir("r-cran-janeaustenr", AustenDir, "Rdata.rdx", cache)
}

// debDir finds the folder dir (absolute, as the package installs it) of the
// Debian package pkg, holding the file marker: installed, already extracted
// under cache, or downloaded now with apt-get download and dpkg-deb -x.
func debDir(pkg, dir, marker, cache string) (string, error) {
	root := filepath.Join(cache, pkg)
	for _, r := range []string{"/", root} {
		if d := filepath.Join(r, dir); fileExists(filepath.Join(d, marker)) {
			return d, nil
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "fetching %s into %s\n", pkg, root)
	get := exec.Command("apt-get", "download", pkg)
	get.Dir, get.Stderr = root, os.Stderr
	if err := get.Run(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w (or install it: apt-get install %s)", pkg, err, pkg)
	}
	debs, _ := filepath.Glob(filepath.Join(root, pkg+"_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download left no %s_*.deb", pkg)
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[len(debs)-1], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: dpkg-deb -x: %w: %s", pkg, err, out)
	}
	return filepath.Join(root, dir), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
