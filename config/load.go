package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Sample is the documented sample configuration shown in the README.
//
//go:embed sample.yaml
var Sample []byte

// Demo is the configuration of `edgecollector demo`: the simulated tank farm.
// Its addresses and data dir are filled in by the demo at start.
//
//go:embed demo.yaml
var Demo []byte

// Load reads, decodes, defaults and validates the config at path. Relative
// file names inside it are resolved against the config's directory. On any
// problem it returns Problems holding all of them; a config it accepts may
// carry Warnings.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileSize {
		return nil, tooBig(path, fi.Size())
	}
	// The file may grow after Stat, or not be a regular file: read one byte
	// past the cap at most.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, tooBig(path, -1)
	}
	return Parse(path, data)
}

// MaxFileSize is the largest config accepted; a larger one is refused
// before it is parsed. 16 MiB holds some 45,000 points written out like the sample.
const MaxFileSize = 16 << 20

// tooBig is the problem of a file of size bytes (-1: more than the cap,
// found while reading).
func tooBig(name string, size int64) error {
	what := fmt.Sprintf("is %d bytes", size)
	switch {
	case size < 0:
		what = fmt.Sprintf("holds more than %d bytes", MaxFileSize)
	case size >= 100<<20:
		what = fmt.Sprintf("is %d MiB", size>>20)
	}
	return Problems{{File: name, Msg: fmt.Sprintf("the file %s; a config may have at most %d MiB (some 45,000 points written out like the sample), so it was not read: check that this is the config file", what, MaxFileSize>>20)}}
}

// Parse is Load on bytes already read; name is used in messages and its
// directory to resolve relative file names.
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, tooBig(name, int64(len(data)))
	}
	d := &decoder{file: name}
	sum := sha256.Sum256(data)
	cfg := &Config{File: name, SHA256: hex.EncodeToString(sum[:]), Raw: data}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil, Problems{{File: name, Line: 1, Column: 1, Msg: "the file is empty; start from the sample config in the README"}}
	} else if err != nil {
		line, msg := yamlErrorLine(err)
		if l, c, m, ok := explainSyntax(data, line); ok {
			return nil, Problems{{File: name, Line: l, Column: c, Msg: "YAML syntax: " + m}}
		}
		return nil, Problems{{File: name, Line: line, Column: 1, Msg: "YAML syntax: " + msg}}
	}
	if len(root.Content) == 0 || root.Content[0].Tag == "!!null" {
		return nil, Problems{{File: name, Line: 1, Column: 1, Msg: "the file is empty; start from the sample config in the README"}}
	}
	d.root = root.Content[0]
	d.aliasBudget = aliasFactor*countNodes(&root) + aliasSlack
	d.decode(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	if d.overBudget {
		return nil, d.probs
	}
	applyDefaults(cfg)
	v := &validator{decoder: d, cfg: cfg, dir: filepath.Dir(name)}
	v.validate()
	if len(d.probs) > 0 {
		return nil, inFileOrder(d.probs)
	}
	cfg.Warnings = inFileOrder(v.warns)
	return cfg, nil
}

func inFileOrder(ps Problems) Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
	return ps
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrorLine(err error) (int, string) {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 1, err.Error()
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}

// Resolve returns a file name from the config, relative to the config's
// directory unless absolute.
func (c *Config) Resolve(name string) string {
	if name == "" || filepath.IsAbs(name) || c.File == "" {
		return name
	}
	return filepath.Join(filepath.Dir(c.File), name)
}

// Point returns the point with this code.
func (c *Config) Point(code string) *Point {
	for i := range c.Points {
		if c.Points[i].Code == code {
			return &c.Points[i]
		}
	}
	return nil
}

// Device returns the device with this name.
func (c *Config) Device(name string) *Device {
	for i := range c.Devices {
		if c.Devices[i].Name == name {
			return &c.Devices[i]
		}
	}
	return nil
}

// Bus returns the bus with this name.
func (c *Config) Bus(name string) *Bus {
	for i := range c.Buses {
		if c.Buses[i].Name == name {
			return &c.Buses[i]
		}
	}
	return nil
}

// Interlock returns the interlock with this name.
func (c *Config) Interlock(name string) *Interlock {
	for i := range c.Interlocks {
		if c.Interlocks[i].Name == name {
			return &c.Interlocks[i]
		}
	}
	return nil
}

// AuditFile is the audit log's path: audit.file, or audit.log in the data dir.
func (c *Config) AuditFile() string {
	if c.Audit.File == "" {
		return filepath.Join(c.Buffer.Dir, "audit.log")
	}
	return c.Resolve(c.Audit.File)
}
