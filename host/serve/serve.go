// Package serve is the HTTP side of matedge serve: the browser demo and its
// runtime from the folder ./build.sh makes, and weights files with HTTP
// Range support, so that a browser fetches only the byte ranges of the
// submodel it plans.
package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/matedge/matedge/weights/defaultmodel"
)

// Options say what Handler serves.
type Options struct {
	// Dist is the folder with the demo page and runtime (FindDist finds it).
	Dist string
	// Models are weights files served as /models/BASENAME, beside the
	// embedded ones.
	Models []string
	// CORS are the origins (scheme://host[:port], or * for any) whose pages
	// may read the files cross-origin; none lets no other origin read them.
	CORS []string
	// Log, when not nil, gets one line per request with the bytes sent.
	Log io.Writer
}

// Handler serves the demo from o.Dist and the weights files under /models/
// with HTTP Range support: only GET and HEAD are answered, there are no
// directory listings, dotfiles are hidden, symlinks may not lead out of the
// folder, and the browser is told to revalidate.
func Handler(o Options) (http.Handler, error) {
	files, err := modelFiles(o.Models)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", staticFiles(o.Dist))
	mux.Handle("/models/", files)
	var handler http.Handler = noCache(rangeUnits(mux))
	if o.Log != nil {
		handler = logRequests(o.Log, handler)
	}
	return corsHeaders(o.CORS, getOrHead(handler)), nil
}

// ValidOrigin reports whether o is an origin as browsers send it:
// scheme://host[:port], nothing after.
func ValidOrigin(o string) bool { return validOrigin(o) }

// modelFile is one weights file served under /models/.
type modelFile struct {
	path  string // on disk; empty for the embedded default
	bytes []byte // the embedded default
	etag  string // strong: a hash of the content
}

// maxRanges is the most byte ranges one model request may ask for; the
// browser runtime asks for one per request.
const maxRanges = 64

// modelServer serves /models/NAME from a map of names, so that any file name
// (with spaces, braces, or the default's) is a key, never a route pattern.
type modelServer map[string]modelFile

// modelFiles names each -model file by its base name; the embedded files —
// the default model /models/default.matw and the vision demo's
// /models/matvit.matw and /models/matvit-xl.mati — are served unless a
// -model file takes their name.
func modelFiles(paths []string) (modelServer, error) {
	files := modelServer{}
	for name, b := range defaultmodel.Files() {
		sum := sha256.Sum256(b)
		files[name] = modelFile{bytes: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	seen := map[string]string{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("-model: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("-model %s: not a regular file", p)
		}
		name := filepath.Base(p)
		if other, ok := seen[name]; ok {
			return nil, fmt.Errorf("-model %s and %s: both would be /models/%s", other, p, name)
		}
		seen[name] = p
		etag, err := fileETag(p)
		if err != nil {
			return nil, fmt.Errorf("-model %s: %w", p, err)
		}
		files[name] = modelFile{path: p, etag: etag}
	}
	return files, nil
}

// fileETag hashes a file's content, so that If-Range and caches can tell
// versions apart.
func fileETag(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`, nil
}

func (m modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/models/")
	f, ok := m[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.Count(r.Header.Get("Range"), ",") >= maxRanges {
		// Each range of a multipart answer costs a part header: thousands of
		// tiny ones turn a small request into a large, slow answer.
		http.Error(w, fmt.Sprintf("more than %d ranges", maxRanges), http.StatusRequestedRangeNotSatisfiable)
		return
	}
	w.Header().Set("ETag", f.etag)
	if f.path == "" {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.bytes))
		return
	}
	file, err := os.Open(f.path)
	if err != nil {
		http.Error(w, "model file unavailable", http.StatusInternalServerError)
		return
	}
	defer file.Close()
	http.ServeContent(w, r, name, time.Time{}, file)
}

// staticFiles serves dir without directory listings, dotfiles, or symlinks
// that lead out of it.
func staticFiles(dir string) http.Handler {
	root, rootErr := filepath.EvalSymlinks(dir)
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rel := path.Clean("/" + r.URL.Path)
		for _, seg := range strings.Split(rel, "/") {
			if strings.HasPrefix(seg, ".") {
				http.NotFound(w, r)
				return
			}
		}
		full := filepath.Join(dir, filepath.FromSlash(rel))
		real, err := filepath.EvalSymlinks(full)
		if err != nil || rootErr != nil || (real != root && !strings.HasPrefix(real, root+string(filepath.Separator))) {
			http.NotFound(w, r)
			return
		}
		if st, err := os.Stat(real); err == nil && st.IsDir() {
			if _, err := os.Stat(filepath.Join(real, "index.html")); err != nil {
				http.NotFound(w, r) // no listings
				return
			}
		} else if serveEncoded(w, r, real) {
			return
		}
		files.ServeHTTP(w, r)
	})
}

// rangeUnits fixes two answers of http.ServeContent to a Range header: a
// unit other than bytes must be ignored (RFC 9110 §14.2: a 200 with the
// whole file, where ServeContent gives 416), and a suffix range of 0 bytes
// ("bytes=-0") cannot be satisfied (where ServeContent gives a 206 with an
// invalid Content-Range). Such a range is rewritten to one that starts past
// any file's end, so that ServeContent drops it and answers 416, with the
// file's size, when no other range is left.
func rangeUnits(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value := r.Header.Get("Range")
		if value == "" {
			h.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		unit, set, ok := strings.Cut(value, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
			r.Header.Del("Range")
			h.ServeHTTP(w, r)
			return
		}
		specs := strings.Split(set, ",")
		for i, spec := range specs {
			if suffix, ok := strings.CutPrefix(strings.TrimSpace(spec), "-"); ok && strings.Trim(suffix, "0") == "" && suffix != "" {
				specs[i] = "9223372036854775807-"
			}
		}
		r.Header.Set("Range", "bytes="+strings.Join(specs, ","))
		h.ServeHTTP(w, r)
	})
}

// validOrigin reports whether o is an origin as browsers send it:
// scheme://host[:port], nothing after.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// corsHeaders lets pages of the given origins (or any, with "*") read the
// responses cross-origin: it answers their preflight requests and exposes
// the headers the browser runtime reads (Content-Range, ETag). With no
// origins it adds nothing, and a browser refuses cross-origin reads.
func corsHeaders(origins []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		allowed := origin != "" && slices.ContainsFunc(origins, func(o string) bool { return o == "*" || o == origin })
		if !allowed {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges, ETag")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD")
			w.Header().Set("Access-Control-Allow-Headers", "Range, If-Range")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// getOrHead answers every other method with 405.
func getOrHead(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// logSafe percent-escapes control bytes, spaces and non-ASCII, so that a
// request cannot forge or split log lines.
func logSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FindDist returns dir when it holds index.html; an empty dir finds ../dist
// next to this program, or ./dist.
func FindDist(dir string) (string, error) {
	candidates := []string{dir}
	if dir == "" {
		candidates = nil
		if exe, err := os.Executable(); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "dist"))
		}
		candidates = append(candidates, "dist")
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "index.html")); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no index.html in %s; run ./build.sh first or pass -dist", strings.Join(candidates, " or "))
}

// noCache makes the browser revalidate: the demo is rebuilt often, and caching
// of model bytes is the runtime's job (by content checksum), not HTTP's.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.bytes += int64(n)
	return n, err
}

// logRequests logs "GET /models/default.matw range=bytes=0-1023 206 1024" lines;
// the browser tests read them to check which bytes were downloaded.
func logRequests(w io.Writer, h http.Handler) http.Handler {
	logger := log.New(w, "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(cw, r)
		rng := r.Header.Get("Range")
		if rng == "" {
			rng = "-"
		}
		logger.Printf("%s %s range=%s %d %d", logSafe(r.Method), logSafe(r.URL.Path), logSafe(rng), cw.status, cw.bytes)
	})
}
