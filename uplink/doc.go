// Package uplink holds what the collector sends to the platform: formats
// (uplink/jsonfmt, uplink/hj212) and transports (uplink/mqtt, HJ 212 over
// TCP). Formats encode a buffered message deterministically, so a resend of
// a seq is the same body but for its resend marker and send time; no uplink
// ever re-packs buffered messages into other messages.
package uplink
