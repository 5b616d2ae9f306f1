// Package hj212 is the HJ 212 uplink: the frame codec of HJ 212-2017 and
// HJ 212-2025 (with the 2025 SM4 envelope), the encoder that turns buffered
// messages into real-time (CN 2011), minute (2051) and hour (2061) packets,
// and the TCP client that sends them to the platform and answers its
// commands. docs/hj212.md describes what goes on the wire and our reading of
// the points where the standard is ambiguous or known to us second-hand.
//
// What it is for: getting every rt and stat message in the buffer to the
// platform, oldest backlog first beside the live ones, each seq under one QN,
// and acknowledging a seq in the buffer only once the platform has it. The
// order, window, backlog rate, OverTime resends and reconnects are package
// uplink's delivery algorithm, shared with MQTT; this package keeps the
// QN/PNO bookkeeping of 9014 answers and the platform's commands.
//
// What it must never do:
//   - acknowledge a seq in the buffer before the platform's CN=9014 answer
//     naming its QN (for every PNO packet of a split seq), when acks are on;
//     with acks off, before the packet was written to the connection;
//   - give up on a message: a packet the platform does not acknowledge is
//     resent (RF=1 in 2025) until it is, across as many connections as it
//     takes;
//   - change the system clock (CN 1012 is answered, never obeyed);
//   - panic on anything the network sends: malformed frames are logged and
//     skipped;
//   - re-pack buffered messages: a seq always encodes to the same packets,
//     but for RF=1 on resends.
//
// HJ 212 has no CN for alarm, fault, interlock or system events, so event
// messages are acknowledged for this uplink without being sent; the MQTT
// uplink carries them. Points without an HJ 212 factor code are left out of
// the packets, and a message with nothing left to send is acknowledged the
// same way.
package hj212
