// Package uplinkschema validates messages against the published JSON Schema
// of the native format, docs/uplink.schema.json. Tests use it so that every
// message the collector publishes in them is checked against the document
// platforms are given.
package uplinkschema

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Path is the schema file in the repository.
func Path() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "docs", "uplink.schema.json")
}

var (
	once    sync.Once
	schemas map[string]*jsonschema.Schema
	loadErr error
)

// Kinds are the message kinds the schema defines, by topic leaf.
var Kinds = []string{"rt", "event", "stat", "status", "meta", "ack"}

func load() {
	f, err := os.Open(Path())
	if err != nil {
		loadErr = err
		return
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		loadErr = err
		return
	}
	c := jsonschema.NewCompiler()
	const url = "file:///uplink.schema.json"
	if loadErr = c.AddResource(url, doc); loadErr != nil {
		return
	}
	schemas = map[string]*jsonschema.Schema{}
	for _, k := range Kinds {
		s, err := c.Compile(url + "#/$defs/" + k)
		if err != nil {
			loadErr = fmt.Errorf("compile %s: %w", k, err)
			return
		}
		schemas[k] = s
	}
}

// Validate checks body against the schema of kind (a topic leaf).
func Validate(kind string, body []byte) error {
	once.Do(load)
	if loadErr != nil {
		return fmt.Errorf("uplink schema: %w", loadErr)
	}
	s := schemas[kind]
	if s == nil {
		return fmt.Errorf("no schema for messages on .../%s", kind)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(inst)
}
