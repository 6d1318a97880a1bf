package serve

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestAcceptsEncoding(t *testing.T) {
	for _, tt := range []struct {
		header, coding string
		want           bool
	}{
		{"gzip, deflate, br, zstd", "br", true},
		{"gzip, deflate, br, zstd", "gzip", true},
		{"gzip, deflate", "br", false},
		{"", "gzip", false},
		{"br;q=0, gzip", "br", false},
		{"BR;Q=0.5", "br", true},
		{"*", "br", true},
		{"*;q=0", "gzip", false},
		{"br;q=0, *", "br", false},
		{"gzip;q=0.0, *;q=1", "gzip", false},
		{"identity", "gzip", false},
	} {
		if got := acceptsEncoding(tt.header, tt.coding); got != tt.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v; want %v", tt.header, tt.coding, got, tt.want)
		}
	}
}

// TestServePrecompressed: matedge serve sends NAME.br or NAME.gz in place of
// NAME by Accept-Encoding, with NAME's type and Vary, and the identity file
// to Range requests and to clients that take neither.
func TestServePrecompressed(t *testing.T) {
	dist := t.TempDir()
	wasm := bytes.Repeat([]byte("\x00asm matedge "), 1000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(wasm)
	zw.Close()
	os.WriteFile(filepath.Join(dist, "index.html"), []byte("<p>demo"), 0o644)
	os.WriteFile(filepath.Join(dist, "matedge.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dist, "matedge.wasm.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dist, "matedge.wasm.br"), []byte("brotli bytes stand-in"), 0o644)
	srv := httptest.NewServer(getOrHead(staticFiles(dist)))
	defer srv.Close()
	// A transport that neither asks for nor undoes gzip itself.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	for _, tt := range []struct {
		path, accept, rng string
		status            int
		encoding          string
		body              []byte
		vary              bool
	}{
		{"/matedge.wasm", "gzip, deflate, br, zstd", "", 200, "br", []byte("brotli bytes stand-in"), true},
		{"/matedge.wasm", "gzip, deflate", "", 200, "gzip", gz.Bytes(), true},
		{"/matedge.wasm", "br;q=0, gzip", "", 200, "gzip", gz.Bytes(), true},
		{"/matedge.wasm", "", "", 200, "", wasm, true},
		{"/matedge.wasm", "identity", "", 200, "", wasm, true},
		{"/matedge.wasm", "br, gzip", "bytes=0-3", 206, "", wasm[:4], true},
		{"/index.html", "br, gzip", "", 200, "", []byte("<p>demo"), false},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.accept != "" {
			req.Header.Set("Accept-Encoding", tt.accept)
		}
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		name := tt.path + " Accept-Encoding=" + tt.accept + " Range=" + tt.rng
		if res.StatusCode != tt.status {
			t.Errorf("%s: status %d; want %d", name, res.StatusCode, tt.status)
		}
		if got := res.Header.Get("Content-Encoding"); got != tt.encoding {
			t.Errorf("%s: Content-Encoding %q; want %q", name, got, tt.encoding)
		}
		if !bytes.Equal(body, tt.body) {
			t.Errorf("%s: body of %d bytes; want %d", name, len(body), len(tt.body))
		}
		if got := res.Header.Get("Vary") == "Accept-Encoding"; got != tt.vary {
			t.Errorf("%s: Vary %q; want Accept-Encoding: %v", name, res.Header.Get("Vary"), tt.vary)
		}
		if tt.path == "/matedge.wasm" && res.Header.Get("Content-Type") != "application/wasm" {
			t.Errorf("%s: Content-Type %q; want application/wasm", name, res.Header.Get("Content-Type"))
		}
	}
}
