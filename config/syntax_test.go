package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hazwatch/edgecollector/config/configtest"
)

func TestSyntaxErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // file:line:col: message, after the file name
	}{
		{"tab", "gateway:\n\tenterprise: E1\n", ":2:1: YAML syntax: tab characters are not allowed for indentation; use spaces"},
		{"tab among spaces", "gateway:\n  enterprise: E1\n  \tcode: G1\n", ":3:3: YAML syntax: tab characters are not allowed"},
		{"tab in a list item", "points:\n  - code: P1\n\t  kind: x\n", ":3:1: YAML syntax: tab characters are not allowed"},
		{"dedented key in a nested mapping",
			"gateway: {enterprise: E1, code: G1}\npoints:\n  - code: P1\n    source:\n      table: holding\n     address: 3\n    unit: m\n",
			":6:6: YAML syntax: this line is indented 5 spaces, which lines up with no level above it (line 5 is at 6 spaces, line 4 at 4)"},
		{"dedented key under a top-level key", "gateway:\n  enterprise: E1\n code: G1\nbuffer: {}\n",
			":3:2: YAML syntax: this line is indented 1 spaces, which lines up with no level above it (line 2 is at 2 spaces, line 1 at 0)"},
		{"key at the list's indentation", "points:\n  - code: P1\n    kind: gas\n  unit: m\n",
			":4:3: YAML syntax: this key is at the indentation of the list items above (line 2, 2 spaces) but does not start with \"- \": indent it like the keys of the item (4 spaces)"},
		{"over-indented key", "gateway:\n  enterprise: E1\n  code: G1\n   name: x\n",
			":4:4: YAML syntax: this line is indented 3 spaces, deeper than line 3 above it (2 spaces), which already has a value"},
		{"unclosed flow mapping: the parser's message", "gateway: {enterprise: E1\nbuffer: 1\n", ":1:1: YAML syntax: did not find expected ',' or '}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			ps, _ := AsProblems(err)
			if len(ps) != 1 || !strings.HasPrefix(ps[0].Error(), "c.yaml"+tc.want) {
				t.Fatalf("got %v\nwant c.yaml%s", err, tc.want)
			}
		})
	}
}

// TestExplainSyntaxQuietOnValidYAML: on files the parser accepts, the
// indentation check finds nothing, so it cannot replace a true message
// with a false one.
func TestExplainSyntaxQuietOnValidYAML(t *testing.T) {
	files := map[string][]byte{"sample.yaml": Sample, "demo.yaml": Demo, "plant": configtest.Plant(50),
		"compact lists":   []byte("points:\n- code: P1\n  kind: x\n- code: P2\nbuffer:\n  dir: x\n"),
		"block scalar":    []byte("gateway:\n  name: |\n    two\n      lines\n  code: G1\n"),
		"flow over lines": []byte("points:\n  - {code: P1,\n     kind: x}\n  - code: P2\n"),
		"plain scalar":    []byte("gateway:\n  name: a long\n    name\n  code: G1\n"),
		"comments":        []byte("gateway:   # the site\n  # indented comment\n      # odd comment\n  code: G1 # x\n"),
	}
	cases, _ := filepath.Glob("testdata/*/config.yaml")
	for _, c := range cases {
		b, _ := os.ReadFile(c)
		files[c] = b
	}
	for name, b := range files {
		var n yaml.Node
		if yaml.Unmarshal(b, &n) != nil {
			continue
		}
		if l, c, m, ok := explainSyntax(b, 1); ok {
			t.Errorf("%s: valid YAML, yet %d:%d: %s", name, l, c, m)
		}
	}
}

// TestShiftedLinesOfTheSample moves each line of the sample one or two
// spaces left or right: whenever the parser refuses the result, the
// problem is on the moved line or names it ("line N"), and says what to do
// about the indentation.
func TestShiftedLinesOfTheSample(t *testing.T) {
	lines := strings.Split(string(Sample), "\n")
	refused, onLine := 0, 0
	for i, l := range lines {
		if s := strings.TrimSpace(l); s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		for _, shift := range []int{-2, -1, 1, 2} {
			moved := slices.Clone(lines)
			if shift < 0 {
				if !strings.HasPrefix(l, strings.Repeat(" ", -shift)) {
					continue
				}
				moved[i] = l[-shift:]
			} else {
				moved[i] = strings.Repeat(" ", shift) + l
			}
			data := []byte(strings.Join(moved, "\n"))
			var n yaml.Node
			if yaml.Unmarshal(data, &n) == nil {
				continue // still valid YAML (then the schema checks speak)
			}
			refused++
			_, err := Parse("s.yaml", data)
			ps, _ := AsProblems(err)
			if len(ps) != 1 || !strings.Contains(ps[0].Msg, "indent") {
				t.Errorf("line %d moved %+d: %v", i+1, shift, err)
				continue
			}
			if ps[0].Line == i+1 {
				onLine++
			} else if !regexp.MustCompile(fmt.Sprintf(`\bline %d\b`, i+1)).MatchString(ps[0].Msg) {
				t.Errorf("line %d moved %+d: the problem neither is on it nor names it: %v", i+1, shift, ps[0])
			}
		}
	}
	t.Logf("%d moved lines refused by the parser, %d reported on the moved line, the others on the next naming it", refused, onLine)
	if refused < 300 {
		t.Fatalf("only %d refused: the test lost its cases", refused)
	}
}
