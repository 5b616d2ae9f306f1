// Package generic reads I2C devices that have no driver of their own but a
// plain register map: optionally a conversion command written first and a
// wait, then for each point the register address written and N bytes read,
// decoded with the data types and byte/word orders of Modbus
// (drivers/modbus.DecodeRegisters), so one vocabulary describes both.
//
// Sizes: bool 1 byte (non-zero, or one bit of it), int16/uint16/bcd16 2,
// int32/uint32/float32/bcd32 4, int64/uint64/float64 8, string Length bytes.
// Orders: ABCD is big-endian; BADC swaps the bytes of each 16-bit word, so a
// little-endian 16-bit register is uint16 with BADC, and a little-endian
// 32-bit one is DCBA.
//
// A device that does not acknowledge gives comm_fault and is probed only
// every ProbeEvery polls (stale in between); bytes that are not a value of the
// type (a BCD nibble above 9) give sensor_fault.
//
// It never owns the bus, never writes anything but the configured command
// and register addresses, and never panics on what the device sends back.
//
// The I2C-bus specification (NXP UM10204) describes the combined
// write-then-read transaction used here:
// https://www.nxp.com/docs/en/user-guide/UM10204.pdf
package generic
