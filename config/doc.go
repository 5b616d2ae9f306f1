// Package config holds the collector's configuration: the YAML schema, its
// defaults, and the validation that refuses a bad file with every problem at
// once, each naming file:line:column, the field path and what to write
// instead.
//
// The package reads files (the config itself, and the TLS and key files it
// names, to prove they are readable) and does nothing else: it never opens a
// serial port, an I2C bus or a network connection. Hardware is checked by the
// command that runs the collector.
package config
