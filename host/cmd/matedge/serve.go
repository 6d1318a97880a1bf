package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/matedge/matedge/weights/defaultmodel"
)

func init() {
	register(command{name: "serve", summary: "serve the browser demo, the module and model files (with HTTP Range)", run: runServe})
}

func runServe(args []string) error {
	fs := newFlags("serve", "[flags]", `Serves the demo page and runtime from the dist folder that ./build.sh makes,
and weights files under /models/ with HTTP Range support, so a browser fetches
only the byte ranges of the submodel it plans. /models/default.matw is the
embedded default model. Each request is logged to stderr with the bytes sent.`)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dist := fs.String("dist", "", "folder with index.html and matedge.wasm; empty finds ../dist next to this program, or ./dist")
	var models []string
	fs.Func("model", "a weights file to serve as /models/BASENAME (repeatable)", func(p string) error {
		models = append(models, p)
		return nil
	})
	quiet := fs.Bool("quiet", false, "do not log requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := findDist(*dist)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("/models/"+defaultmodel.Name, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, defaultmodel.Name, time.Time{}, bytes.NewReader(defaultmodel.Bytes))
	})
	for _, p := range models {
		if _, err := os.Stat(p); err != nil {
			return err
		}
		mux.HandleFunc("/models/"+filepath.Base(p), func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, p) })
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var handler http.Handler = noCache(mux)
	if !*quiet {
		handler = logRequests(handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "matedge: serving %s on http://%s/ (Ctrl-C stops)\n", dir, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func findDist(dir string) (string, error) {
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
func logRequests(h http.Handler) http.Handler {
	logger := log.New(os.Stderr, "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(cw, r)
		rng := r.Header.Get("Range")
		if rng == "" {
			rng = "-"
		}
		logger.Printf("%s %s range=%s %d %d", r.Method, r.URL.Path, rng, cw.status, cw.bytes)
	})
}
