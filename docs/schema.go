// Package docs carries the documents that programs need at run time, so a
// binary works without the repository: the JSON Schema of the native uplink
// format (uplink.schema.json, described in uplink-format.md).
package docs

import _ "embed"

// UplinkSchema is docs/uplink.schema.json, the schema every message on the
// native MQTT uplink follows.
//
//go:embed uplink.schema.json
var UplinkSchema []byte
