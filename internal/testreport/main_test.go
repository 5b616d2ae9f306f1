package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestReport: packages are printed as they finish with their time, a
// failing test's output is printed, and a package failing without a
// failing test (a build error) is named.
func TestReport(t *testing.T) {
	var b bytes.Buffer
	r := newReport(&b)
	for _, e := range []event{
		{Action: "start", Package: "a"},
		{Action: "start", Package: "b"},
		{Action: "start", Package: "c"},
		{Action: "output", Package: "a", Test: "TestX", Output: "x_test.go:9: boom\n"},
		{Action: "fail", Package: "a", Test: "TestX", Elapsed: 0.5},
		{Action: "pass", Package: "a", Test: "TestY"},
		{Action: "fail", Package: "a", Elapsed: 1.25},
		{Action: "pass", Package: "b", Elapsed: 3},
		{Action: "output", Package: "c", Output: "c.go:1: syntax error\n"},
		{Action: "fail", Package: "c", Elapsed: 0},
	} {
		r.add(&e)
	}
	out := b.String()
	for _, want := range []string{"--- FAIL: a TestX (0.5s)", "    x_test.go:9: boom", "FAIL a", "1.2s", "ok   b", "3.0s", "FAIL c", "c.go:1: syntax error"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if len(r.failed) != 2 || r.failed[0] != "a TestX" || !strings.HasPrefix(r.failed[1], "c (build") || r.passed != 1 || r.packages != 3 {
		t.Errorf("failed %q passed %d packages %d", r.failed, r.passed, r.packages)
	}
}
