package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// heartbeat is how long a stage may run before status says it is still at it.
const heartbeat = 5 * time.Second

// status tells the user on stderr what a command is doing, so that none is
// silent for more than a few seconds: a line when a stage starts, and a
// "still …" line every heartbeat while it lasts. A quiet status (-q) prints
// nothing. Results go to stdout; status lines never do.
type status struct {
	command string
	w       io.Writer // nil when quiet

	mu      sync.Mutex
	stage   string
	started time.Time
	done    chan struct{}
}

// newStatus starts the heartbeat of a command's status; stop ends it.
func newStatus(command string, quiet bool) *status {
	s := &status{command: command, done: make(chan struct{})}
	if quiet {
		return s
	}
	s.w = os.Stderr
	go func() {
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case now := <-tick.C:
				s.mu.Lock()
				if s.stage != "" && now.Sub(s.started) >= heartbeat {
					fmt.Fprintf(s.w, "matedge %s: still %s (%.0f s)\n", s.command, s.stage, now.Sub(s.started).Seconds())
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// Stage prints that a stage has started ("measuring this device…").
func (s *status) Stage(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stage = fmt.Sprintf(format, args...)
	s.started = time.Now()
	if s.w != nil {
		fmt.Fprintf(s.w, "matedge %s: %s…\n", s.command, s.stage)
	}
}

// Say prints one line that is not a stage (a result worth seeing on stderr),
// and ends the current stage.
func (s *status) Say(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stage = ""
	if s.w != nil {
		fmt.Fprintf(s.w, "matedge %s: %s\n", s.command, fmt.Sprintf(format, args...))
	}
}

// Idle ends the current stage without a line: what follows shows itself
// (streamed text, a table).
func (s *status) Idle() {
	s.mu.Lock()
	s.stage = ""
	s.mu.Unlock()
}

// Stop ends the heartbeat.
func (s *status) Stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// wrote reports on stderr where a command wrote its report, after err (the
// write's) is nil.
func wrote(command, dir, report string, err error) error {
	if err == nil {
		fmt.Fprintf(os.Stderr, "matedge %s: wrote %s and %s\n", command, filepath.Join(dir, report), filepath.Join(dir, "results"))
	}
	return err
}

// countBar shows progress through n items on stderr: a redrawn bar on a
// terminal, a line every 10 s otherwise; nothing when quiet.
type countBar struct {
	command, unit string
	n             int
	terminal      bool
	quiet         bool
	start, last   time.Time
}

func newCountBar(command, unit string, n int, quiet bool) *countBar {
	fi, err := os.Stderr.Stat()
	now := time.Now()
	return &countBar{command: command, unit: unit, n: n, quiet: quiet, terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0, start: now, last: now}
}

func (b *countBar) update(done int) {
	if b.quiet {
		return
	}
	now := time.Now()
	if done < b.n && now.Sub(b.last) < 200*time.Millisecond || !b.terminal && done < b.n && now.Sub(b.last) < 10*time.Second {
		return
	}
	b.last = now
	const width = 24
	filled := width * done / max(1, b.n)
	rate := float64(done) / max(now.Sub(b.start).Seconds(), 1e-9)
	eta := time.Duration(float64(b.n-done) / max(rate, 1e-9) * float64(time.Second)).Round(time.Second)
	line := fmt.Sprintf("matedge %s: %s %d/%d %s | %.0f %s/s | ETA %s", b.command,
		strings.Repeat("█", filled)+strings.Repeat("·", width-filled), done, b.n, b.unit, rate, b.unit, eta)
	if b.terminal {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(os.Stderr, line)
	}
}

// done ends the bar's line on a terminal.
func (b *countBar) done() {
	if !b.quiet && b.terminal {
		fmt.Fprintln(os.Stderr)
	}
}
