package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
