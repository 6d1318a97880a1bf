package serve

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights"
	"github.com/matedge/matedge/weights/defaultmodel"
)

// TestServeRefuses: what serve must not hand out, and how it routes models.
func TestServeRefuses(t *testing.T) {
	dist, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dist, "index.html"), []byte("<p>demo"), 0o644)
	os.WriteFile(filepath.Join(dist, ".secret"), []byte("key"), 0o644)
	os.Mkdir(filepath.Join(dist, "sub"), 0o755)
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("root"), 0o644)
	os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(dist, "escape"))
	odd := filepath.Join(outside, "my {model}.matw")
	os.WriteFile(odd, tinyFile(t), 0o644)

	models, err := modelFiles([]string{odd})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", staticFiles(dist))
	mux.Handle("/models/", models)
	srv := httptest.NewServer(getOrHead(mux))
	defer srv.Close()

	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200},
		{"GET", "/.secret", 404},
		{"GET", "/sub/", 404},
		{"GET", "/escape", 404},
		{"OPTIONS", "/models/default.matw", 405},
		{"POST", "/", 405},
		{"HEAD", "/models/default.matw", 200},
		{"HEAD", "/models/matvit.matw", 200},    // the vision demo's embedded model
		{"HEAD", "/models/matvit-xl.mati", 200}, // and its index
		{"GET", "/models/my%20%7Bmodel%7D.matw", 200},
		{"GET", "/models/nope.matw", 404},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, res.StatusCode, tt.want)
		}
		if strings.HasPrefix(tt.path, "/models/") && res.StatusCode == 200 && res.Header.Get("ETag") == "" {
			t.Errorf("%s %s has no ETag", tt.method, tt.path)
		}
	}

	req, _ := http.NewRequest("GET", srv.URL+"/models/default.matw", nil)
	req.Header.Set("Range", "bytes=0-0"+strings.Repeat(",1-1", 200))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("201 ranges: %v %v; want 416", res.StatusCode, err)
	}
	if _, err := modelFiles([]string{odd, odd}); err == nil || !strings.Contains(err.Error(), "both would be") {
		t.Errorf("duplicate -model names: %v", err)
	}
	if _, err := modelFiles([]string{outside}); err == nil {
		t.Error("a folder as -model was accepted")
	}
	if got := logSafe("/a\nGET /forged range=x 200 1"); strings.ContainsAny(got, "\n ") {
		t.Errorf("logSafe left a newline or space: %q", got)
	}
}

// TestServeRangeEdges: "bytes=-0" cannot be satisfied (416, not a 206 with
// an invalid Content-Range) and a unit other than bytes is ignored (200 and
// the whole file, not 416) (issue 15, defect 19).
func TestServeRangeEdges(t *testing.T) {
	models, err := modelFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rangeUnits(models))
	defer srv.Close()
	size := len(defaultmodel.Bytes)
	for _, tt := range []struct {
		rng          string
		status       int
		contentRange string
		bytes        int
	}{
		{"bytes=-0", 416, fmt.Sprintf("bytes */%d", size), -1},
		{"bytes=-000", 416, fmt.Sprintf("bytes */%d", size), -1},
		{"bytes=-0,-0", 416, fmt.Sprintf("bytes */%d", size), -1},
		{"bytes=0-3, -0", 206, fmt.Sprintf("bytes 0-3/%d", size), 4},
		{"bytes=-4", 206, fmt.Sprintf("bytes %d-%d/%d", size-4, size-1, size), 4},
		{"Bytes=0-3", 206, fmt.Sprintf("bytes 0-3/%d", size), 4},
		{"items=0-3", 200, "", size},
		{"rows=1-2", 200, "", size},
		{"garbage", 200, "", size},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/models/default.matw", nil)
		req.Header.Set("Range", tt.rng)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.status || res.Header.Get("Content-Range") != tt.contentRange || (tt.bytes >= 0 && len(body) != tt.bytes) {
			t.Errorf("Range %q = %d, Content-Range %q, %d bytes; want %d, %q, %d bytes", tt.rng, res.StatusCode, res.Header.Get("Content-Range"), len(body), tt.status, tt.contentRange, tt.bytes)
		}
	}
}

// TestServeCORS: with -cors, pages of the named origins may read files
// cross-origin (preflight included, Content-Range exposed); others, and every
// origin without -cors, get no CORS headers (issue 15, defect 20).
func TestServeCORS(t *testing.T) {
	models, err := modelFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	const page = "http://app.example:8000"
	for _, tt := range []struct {
		origins []string
		origin  string
		allowed bool
	}{
		{nil, page, false},
		{[]string{page}, page, true},
		{[]string{page}, "http://evil.example", false},
		{[]string{"*"}, "http://evil.example", true},
	} {
		srv := httptest.NewServer(corsHeaders(tt.origins, getOrHead(models)))
		req, _ := http.NewRequest("GET", srv.URL+"/models/default.matw", nil)
		req.Header.Set("Origin", tt.origin)
		req.Header.Set("Range", "bytes=0-11")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := res.Header.Get("Access-Control-Allow-Origin")
		if (got == tt.origin) != tt.allowed || res.StatusCode != 206 {
			t.Errorf("-cors %v, Origin %s: %d, Allow-Origin %q; want allowed %v", tt.origins, tt.origin, res.StatusCode, got, tt.allowed)
		}
		if tt.allowed && !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "Content-Range") {
			t.Errorf("-cors %v: Content-Range not exposed", tt.origins)
		}
		pre, _ := http.NewRequest("OPTIONS", srv.URL+"/models/default.matw", nil)
		pre.Header.Set("Origin", tt.origin)
		pre.Header.Set("Access-Control-Request-Method", "GET")
		pre.Header.Set("Access-Control-Request-Headers", "range")
		res, err = http.DefaultClient.Do(pre)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if want := map[bool]int{true: 204, false: 405}[tt.allowed]; res.StatusCode != want || (tt.allowed && !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Range")) {
			t.Errorf("-cors %v, preflight from %s: %d, Allow-Headers %q; want %d", tt.origins, tt.origin, res.StatusCode, res.Header.Get("Access-Control-Allow-Headers"), want)
		}
		srv.Close()
	}
	for _, o := range []string{"app.example", "http://app.example/path", "ftp://x", "http://"} {
		if validOrigin(o) {
			t.Errorf("validOrigin(%q) = true", o)
		}
	}
}

// tinyFile is a small weights file of random weights.
func tinyFile(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := weights.Write(&buf, weights.Random(weights.TinyConfig(), 7), model.Tokenizer{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
