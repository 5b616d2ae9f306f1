package pointtable

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hazwatch/edgecollector/config"
)

const usage = `usage:
  edgecollector points import FILE.xlsx|FILE.csv [-sheet NAME] [-c CONFIG] [-o points.yaml]
      read a point table and write its points: YAML (stdout unless -o); with -c, check the
      points against CONFIG's devices and rules, every problem named by sheet, row and column
  edgecollector points export -c CONFIG -o FILE.xlsx|FILE.csv [-preset generic|jiangsu] [-table points|sensors]
      write CONFIG's points as the same table, and the platform's sensor table (an .xlsx gets
      both as sheets "points" and "sensors"; a .csv gets the one -table names)
`

// Command is `edgecollector points ...`; it returns the exit code (0, 1 on
// failure, 2 for a bad table, config or usage).
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "import":
		return cmdImport(args[1:], stdout, stderr)
	case "export":
		return cmdExport(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown points command %q\n%s", args[0], usage)
	return 2
}

// parse parses flags given before or after the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("points import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sheet := fs.String("sheet", "", `sheet to read (default "points", else the first)`)
	cfgPath := fs.String("c", "", "config to check the points against (its points are replaced by the table's)")
	out := fs.String("o", "", "write the points YAML here (default stdout)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	file := pos[0]
	t, err := ReadFile(file, *sheet)
	if err != nil {
		fmt.Fprintln(stderr, "points import:", err)
		return 2
	}
	im, probs := Import(t, file)
	if len(probs) == 0 && *cfgPath != "" {
		probs = append(probs, Check(im, t, file, *cfgPath)...)
	}
	if len(probs) > 0 {
		fmt.Fprintln(stderr, probs.Error())
		fmt.Fprintf(stderr, "%s: %d problem(s); nothing was written\n", file, len(probs))
		return 2
	}
	from := filepath.Base(file)
	if t.Sheet != "" {
		from += " sheet " + t.Sheet
	}
	y, err := im.YAML(fmt.Sprintf("%d points imported from %s by edgecollector points import", len(im.Rows), from))
	if err != nil {
		fmt.Fprintln(stderr, "points import:", err)
		return 1
	}
	if *out == "" {
		stdout.Write(y)
		return 0
	}
	if err := os.WriteFile(*out, y, 0o644); err != nil {
		fmt.Fprintln(stderr, "points import:", err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: %d points written to %s\n", file, len(im.Rows), *out)
	return 0
}

var pointPath = regexp.MustCompile(`^points\[(\d+)\](?:\.(.*))?$`)

// Check validates the imported points inside the config at cfgPath (whose
// own points they replace) and names each problem of a point by its row and
// column in the table.
func Check(im *Imported, t *Table, file, cfgPath string) Problems {
	fail := func(err error) Problems {
		return Problems{{File: cfgPath, Msg: err.Error()}}
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return fail(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fail(err)
	}
	m := root(&doc)
	if m.Kind != yaml.MappingNode {
		return fail(fmt.Errorf("not a config (a YAML mapping)"))
	}
	replaced := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "points" {
			m.Content[i+1], replaced = im.Points, true
		}
	}
	if !replaced {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "points"}, im.Points)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&doc); err != nil {
		return fail(err)
	}
	enc.Close()
	_, err = config.Parse(cfgPath, buf.Bytes())
	if err == nil {
		return nil
	}
	cps, ok := config.AsProblems(err)
	if !ok {
		return fail(err)
	}
	var probs Problems
	for _, cp := range cps {
		mm := pointPath.FindStringSubmatch(cp.Path)
		if mm == nil {
			probs = append(probs, Problem{File: cfgPath, Msg: fmt.Sprintf("%s: %s", cp.Path, cp.Msg)})
			continue
		}
		i, _ := strconv.Atoi(mm[1])
		if i >= len(im.Rows) {
			probs = append(probs, Problem{File: file, Sheet: t.Sheet, Msg: fmt.Sprintf("%s: %s", cp.Path, cp.Msg)})
			continue
		}
		p := Problem{File: file, Sheet: t.Sheet, Row: im.Rows[i], Msg: cp.Msg}
		if k, ok := columnOfPath(mm[2]); ok && im.Cols[k] > 0 {
			p.Col, p.Header = im.Cols[k], Columns[k].Key
		} else if mm[2] != "" {
			p.Msg = mm[2] + ": " + cp.Msg
		}
		probs = append(probs, p)
	}
	return probs
}

// columnOfPath maps a config path under a point ("source.address",
// "raw_range", "alarms") to the column that holds it, or its first column.
func columnOfPath(p string) (int, bool) {
	if p == "" {
		return 0, false
	}
	for i, c := range Columns {
		if strings.Join(c.Path, ".") == p {
			return i, true
		}
	}
	for i, c := range Columns {
		if strings.HasPrefix(strings.Join(c.Path, "."), p+".") {
			return i, true
		}
	}
	if j := strings.LastIndexByte(p, '.'); j > 0 {
		return columnOfPath(p[:j])
	}
	return 0, false
}

func cmdExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("points export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "config file")
	out := fs.String("o", "", "FILE.xlsx or FILE.csv to write")
	preset := fs.String("preset", "generic", "sensor table layout: "+strings.Join(Presets, ", "))
	table := fs.String("table", "points", "for a .csv: points or sensors")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	if *cfgPath == "" || *out == "" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	pts, lost, err := Export(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "points export:", err)
		return 2
	}
	sensors, err := Sensors(cfg, *preset)
	if err != nil {
		fmt.Fprintln(stderr, "points export:", err)
		return 2
	}
	for _, l := range lost {
		fmt.Fprintf(stderr, "points export: warning: the table has no column for %s (kept in the config only)\n", l)
	}
	switch strings.ToLower(filepath.Ext(*out)) {
	case ".xlsx":
		err = WriteXLSX(*out, pts, sensors)
	case ".csv":
		var t *Table
		switch *table {
		case "points":
			t = pts
		case "sensors":
			t = sensors
		default:
			fmt.Fprintf(stderr, "unknown -table %q: want points or sensors\n", *table)
			return 2
		}
		var f *os.File
		if f, err = os.Create(*out); err == nil {
			err = WriteCSV(f, t)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	default:
		fmt.Fprintf(stderr, "points export: %s: want an .xlsx or .csv file\n", *out)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "points export:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d points written to %s\n", *cfgPath, len(pts.Rows)-1, *out)
	return 0
}
