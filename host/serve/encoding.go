package serve

import (
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// precompressed are the encodings serve sends from files ./build.sh writes
// beside a static file (matedge.wasm.br, matedge.wasm.gz), best first.
var precompressed = []struct{ coding, suffix string }{
	{"br", ".br"},
	{"gzip", ".gz"},
}

// serveEncoded answers a request for file with file.br or file.gz when such a
// sibling exists and Accept-Encoding takes its coding, with the original's
// Content-Type; it reports whether it answered. Every answer for a file that
// has a sibling carries Vary: Accept-Encoding, so that a cache keeps the
// variants apart. Range requests get the identity file: a byte range of a
// compressed body means nothing to a client that wants the original's bytes.
func serveEncoded(w http.ResponseWriter, r *http.Request, file string) bool {
	var variants []string // the codings with a sibling file, best first
	for _, p := range precompressed {
		if st, err := os.Stat(file + p.suffix); err == nil && st.Mode().IsRegular() {
			variants = append(variants, p.coding)
		}
	}
	if len(variants) == 0 {
		return false
	}
	w.Header().Add("Vary", "Accept-Encoding")
	if r.Header.Get("Range") != "" {
		return false
	}
	for _, p := range precompressed {
		if !contains(variants, p.coding) || !acceptsEncoding(r.Header.Get("Accept-Encoding"), p.coding) {
			continue
		}
		f, err := os.Open(file + p.suffix)
		if err != nil {
			continue
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			continue
		}
		ctype := mime.TypeByExtension(filepath.Ext(file))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Encoding", p.coding)
		http.ServeContent(w, r, "", st.ModTime(), f)
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// acceptsEncoding reports whether an Accept-Encoding header takes coding:
// named with a q-value above 0, or matched by "*" when not named (RFC 9110,
// section 12.5.3).
func acceptsEncoding(header, coding string) bool {
	star := false
	for _, item := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
		q := 1.0
		for _, param := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch name = strings.TrimSpace(name); {
		case strings.EqualFold(name, coding):
			return q > 0
		case name == "*":
			star = q > 0
		}
	}
	return star
}
