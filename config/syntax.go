package config

import (
	"fmt"
	"strings"
)

// explainSyntax looks again at a file the YAML parser refused, for the
// mistakes people make by hand: a tab in the indentation, or a key
// indented so that it lines up with no level above it. The parser names
// the line where the enclosing block began ("line 1: did not find expected
// key" for a key dedented on line 40); this names the line of the key
// itself and says what to write. ok is false when it finds nothing, and the
// parser's own message stands.
//
// yamlLine is the parser's line: a problem found before it is not the
// parser's, so only one on it or after it is reported, except for tabs,
// which are never valid indentation.
func explainSyntax(data []byte, yamlLine int) (line, col int, msg string, ok bool) {
	type level struct {
		ind   int
		line  int  // the last line at this level
		seq   bool // "- " items at this indentation
		mixed bool // a key's list written at the key's own indentation
	}
	var stack []level
	opens := true   // the line before opened a nested block
	prev := 0       // the line before, ignoring blank lines and comments
	scalarInd := -1 // inside a block scalar (| or >) of a key at this indentation
	flow := 0       // depth of [ ] and { } spanning lines
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		n := i + 1
		raw = strings.TrimRight(raw, "\r")
		ws := len(raw) - len(strings.TrimLeft(raw, " \t"))
		content := stripComment(raw[ws:])
		if strings.TrimSpace(content) == "" {
			continue
		}
		if t := strings.IndexByte(raw[:ws], '\t'); t >= 0 && scalarInd < 0 && flow == 0 {
			return n, t + 1, "tab characters are not allowed for indentation; use spaces", true
		}
		ind := ws
		if scalarInd >= 0 {
			if ind > scalarInd {
				continue
			}
			scalarInd = -1
		}
		if flow > 0 {
			flow = max(flow+flowDelta(content), 0)
			continue
		}
		content = strings.TrimRight(content, " \t")
		item := content == "-" || strings.HasPrefix(content, "- ")
		key := keyEnd(content) >= 0
		// Only a problem on the parser's line or after it is the parser's.
		report := func(format string, args ...any) (int, int, string, bool) {
			if n < yamlLine {
				return 0, 0, "", false
			}
			return n, ind + 1, fmt.Sprintf(format, args...), true
		}
		switch {
		case len(stack) == 0:
			stack = append(stack, level{ind: ind, line: n, seq: item})
		case ind > stack[len(stack)-1].ind:
			if !opens {
				if !item && !key {
					continue // a plain scalar carried on to this line
				}
				return report("this line is indented %d spaces, deeper than line %d above it (%d spaces), which already has a value: indent it like line %d, or remove that value to nest it",
					ind, prev, stack[len(stack)-1].ind, prev)
			}
			stack = append(stack, level{ind: ind, line: n, seq: item})
		default:
			var popped []level
			for len(stack) > 0 && stack[len(stack)-1].ind > ind {
				popped = append(popped, stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			top := len(stack) - 1
			switch {
			case top < 0 || stack[top].ind != ind:
				d := popped[len(popped)-1]
				around := fmt.Sprintf("line %d is at %d spaces", d.line, d.ind)
				switch {
				case top >= 0 && stack[top].line == d.line:
					around = fmt.Sprintf("line %d has its \"- \" at %d spaces and its keys at %d", d.line, stack[top].ind, d.ind)
				case top >= 0:
					around += fmt.Sprintf(", line %d at %d", stack[top].line, stack[top].ind)
				}
				return report("this line is indented %d spaces, which lines up with no level above it (%s): indent it exactly like the keys it belongs with",
					ind, around)
			case stack[top].seq && !item && !stack[top].mixed:
				return report("this key is at the indentation of the list items above (line %d, %d spaces) but does not start with \"- \": indent it like the keys of the item (%d spaces), or start a new item with \"- \"",
					stack[top].line, ind, ind+2)
			case !stack[top].seq && item && !opens:
				// An item among keys: it belongs to the nearest list.
				best := -1
				for _, l := range append(popped, stack...) {
					if l.seq && l.ind != ind && (best < 0 || abs(l.ind-ind) < abs(best-ind)) {
						best = l.ind
					}
				}
				if best < 0 {
					return 0, 0, "", false // the parser's message stands
				}
				return report("this list item is at the indentation of the keys above (%d spaces), and line %d above it already has a value: indent it like the other items of its list (%d spaces)",
					ind, prev, best)
			case !stack[top].seq && item:
				stack[top].mixed, stack[top].seq = true, true
			}
		}
		stack[len(stack)-1].line = n
		prev = n
		// What this line opens: the keys of a list item start after "- ".
		rest := content
		itemInd := ind
		for strings.HasPrefix(rest, "- ") || rest == "-" {
			if rest == "-" {
				rest = ""
				break
			}
			after := strings.TrimLeft(rest[2:], " ")
			itemInd += len(rest) - len(after)
			rest = after
			if keyEnd(rest) >= 0 {
				stack = append(stack, level{ind: itemInd, line: n})
			}
		}
		opens = rest == "" || strings.HasSuffix(rest, ":")
		if k := keyEnd(rest); k >= 0 {
			v := strings.TrimSpace(rest[k+1:])
			if strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">") {
				scalarInd = itemInd
			}
			if strings.HasPrefix(v, "&") && !strings.Contains(v, " ") {
				opens = true // an anchor before a nested block
			}
			flow = max(flowDelta(v), 0)
		} else {
			flow = max(flowDelta(rest), 0)
		}
	}
	return 0, 0, "", false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// keyEnd is the index of the colon ending the line's key ("key: v" or
// "key:"), outside quotes; -1 when the line has no key.
func keyEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			if i == 0 {
				quote = c
			}
		case c == '{' || c == '[':
			return -1
		case c == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t'):
			return i
		}
	}
	return -1
}

// stripComment cuts a # comment (one after a space, outside quotes).
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i]
		}
	}
	return s
}

// flowDelta is how many [ and { the text leaves open, outside quotes.
func flowDelta(s string) int {
	d := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			d++
		case c == ']' || c == '}':
			d--
		}
	}
	return d
}
