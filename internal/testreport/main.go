// Command testreport reads `go test -json` on stdin and prints, while the
// tests run, each package as it finishes with its time (and every 60 s the
// packages still running), the output of each failing test, and at the end
// a summary of the failing tests. It exits 1 when a test or a package
// failed. scripts/test pipes the long go test stage through it:
//
//	go test -json ./... | go run ./internal/testreport -summary FILE
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one line of test2json output.
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type report struct {
	mu       sync.Mutex
	w        io.Writer
	started  time.Time
	running  map[string]time.Time // package → start
	output   map[string][]string  // package/test → output lines
	failed   []string             // "package TestName" or "package (build or TestMain)"
	passed   int
	packages int
}

func newReport(w io.Writer) *report {
	return &report{w: w, started: time.Now(), running: map[string]time.Time{}, output: map[string][]string{}}
}

func key(e *event) string { return e.Package + " " + e.Test }

// add takes one event.
func (r *report) add(e *event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Action {
	case "start":
		r.running[e.Package] = time.Now()
	case "output":
		k := key(e)
		if len(r.output[k]) < 2000 {
			r.output[k] = append(r.output[k], e.Output)
		}
	case "pass", "fail", "skip":
		if e.Test != "" {
			if e.Action == "fail" {
				r.failed = append(r.failed, e.Package+" "+e.Test)
				fmt.Fprintf(r.w, "--- FAIL: %s %s (%.1fs)\n", e.Package, e.Test, e.Elapsed)
				for _, l := range r.output[key(e)] {
					fmt.Fprint(r.w, "    ", l)
				}
			} else if e.Action == "pass" {
				r.passed++
			}
			delete(r.output, key(e))
			return
		}
		delete(r.running, e.Package)
		r.packages++
		status := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "----"}[e.Action]
		fmt.Fprintf(r.w, "%s %-60s %7.1fs\n", status, e.Package, e.Elapsed)
		if e.Action == "fail" {
			// A package that failed without a failing test: build error,
			// TestMain, a panic or a timeout. Print what it said.
			own := false
			for _, f := range r.failed {
				if strings.HasPrefix(f, e.Package+" ") {
					own = true
				}
			}
			if !own {
				r.failed = append(r.failed, e.Package+" (build, TestMain, panic or timeout)")
				for _, l := range r.output[key(e)] {
					fmt.Fprint(r.w, "    ", l)
				}
			}
		}
		delete(r.output, key(e))
	}
}

// tick prints the packages still running.
func (r *report) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for p, at := range r.running {
		names = append(names, fmt.Sprintf("%s (%ds)", p, int(time.Since(at).Seconds())))
	}
	sort.Strings(names)
	if len(names) > 0 {
		fmt.Fprintf(r.w, "... %ds: %d packages finished, still running: %s\n", int(time.Since(r.started).Seconds()), r.packages, strings.Join(names, ", "))
	}
}

func main() {
	summary := flag.String("summary", "", "append the failing tests to this file, one a line")
	every := flag.Duration("progress", time.Minute, "print the packages still running this often")
	flag.Parse()
	r := newReport(os.Stdout)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.tick()
			case <-done:
				return
			}
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // go test's own messages (build errors)
			continue
		}
		r.add(&e)
	}
	close(done)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Printf("%d packages, %d tests passed, %d failed, in %s\n", r.packages, r.passed, len(r.failed), time.Since(r.started).Round(time.Second))
	if *summary != "" && len(r.failed) > 0 {
		f, err := os.OpenFile(*summary, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			for _, l := range r.failed {
				fmt.Fprintln(f, l)
			}
			f.Close()
		}
	}
	if len(r.failed) > 0 {
		os.Exit(1)
	}
}
