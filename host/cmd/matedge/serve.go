package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/matedge/matedge/host/serve"
)

func init() {
	register(command{name: "serve", summary: "serve the browser demo, the module and model files (with HTTP Range)", run: runServe})
}

func runServe(args []string) error {
	fs := newFlags("serve", "[flags]", `Serves the demo page and runtime from the dist folder that ./build.sh makes,
and weights files under /models/ with HTTP Range support, so a browser fetches
only the byte ranges of the submodel it plans. /models/default.matw is the
embedded default model, and /models/matvit.matw and /models/matvit-xl.mati
the vision demo's (vision.html) model and index, unless a -model file has
that name. Only GET and HEAD
are answered; there are no directory listings, dotfiles are hidden, and
symlinks may not lead out of the dist folder. Pages of other origins may read
the files only from the origins -cors names. Each request is logged to stderr
with the bytes sent (control bytes, spaces and non-ASCII percent-escaped).`)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dist := fs.String("dist", "", "folder with index.html and matedge.wasm; empty finds ../dist next to this program, or ./dist")
	var models []string
	fs.Func("model", "a weights file to serve as /models/BASENAME (repeatable)", func(p string) error {
		models = append(models, p)
		return nil
	})
	quiet := fs.Bool("quiet", false, "do not log requests")
	var corsOrigins []string
	fs.Func("cors", "let pages of this `origin` (scheme://host[:port], or * for any) fetch the models and files cross-origin (repeatable)", func(o string) error {
		if o != "*" && !serve.ValidOrigin(o) {
			return fmt.Errorf("%q: want * or scheme://host[:port]", o)
		}
		corsOrigins = append(corsOrigins, o)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := serve.FindDist(*dist)
	if err != nil {
		return err
	}
	o := serve.Options{Dist: dir, Models: models, CORS: corsOrigins}
	if !*quiet {
		o.Log = os.Stderr
	}
	handler, err := serve.Handler(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Idle keep-alive connections and slow request headers are cut; a response
	// has no deadline, so a slow but live client can fetch a large model.
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	fmt.Fprintf(os.Stderr, "matedge: serving %s on http://%s/ (Ctrl-C stops)\n", dir, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done // let in-flight downloads finish, up to the grace period
	return nil
}
