// Package modbus reads instruments and writes interlock outputs over Modbus
// TCP and Modbus RTU, with github.com/grid-x/modbus for framing.
//
// A Line is one RS-485 line or one TCP endpoint: every request on it is
// serialised (set-slave plus request under one lock) and an interlock write
// jumps the queue, waiting at most for the request already on the wire. A
// Device is one unit id on a line; a Plan coalesces a device's points into
// block reads and splits blocks around addresses the device rejects.
//
// The package decodes every byte a device sends defensively: a short, garbled
// or hostile answer gives an error and a quality, never a panic. It never
// writes to an address that is not an interlock output handed to it.
package modbus
