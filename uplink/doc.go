// Package uplink holds what the collector sends to the platform: formats
// (uplink/jsonfmt, uplink/hj212) and transports (uplink/mqtt, HJ 212 over
// TCP). Formats encode a buffered message deterministically, so a resend of
// a seq is the same body but for its resend marker and send time; no uplink
// ever re-packs buffered messages into other messages.
//
// The package itself is the delivery algorithm both transports share, written
// once: a Delivery reads the buffer through Store, sends live messages at
// once and the backlog oldest first beside them (at the backlog rate), keeps
// a window of seqs awaiting the platform's confirmation, acknowledges a seq in
// the buffer only on that confirmation, sends again what is not confirmed in
// time, and reconnects with a jittered back-off. A transport only turns a
// message into bytes on its wire (Send) and reports the platform's answers
// (Confirm, Handed).
//
// What it must never do:
//   - acknowledge a seq in the buffer that was not sent on the current
//     connection and is not awaited there: a platform that names other seqs
//     is ignored, logged and counted (Stats.AcksIgnored);
//   - mark a seq as a resend unless it may have reached the platform before:
//     sent on an earlier connection (or earlier on this one), or appended
//     before this process started (DESIGN.md, "Delivery");
//   - give up on a seq: what is not confirmed stays in the buffer and goes out
//     again, on this connection after the timeout or on the next one;
//   - pace live messages: the backlog rate applies to the backlog and to
//     resends only.
package uplink
