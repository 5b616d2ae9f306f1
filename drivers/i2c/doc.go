// Package i2c opens the gateway's own I2C buses and builds the edge.Source of
// each I2C device the config names: Bosch BME280/BMP280 environment sensors
// (package bme280), TI ADS1115/ADS1015 ADCs reading 4-20 mA loops across a
// shunt (package ads1115) and generic register devices (package generic).
//
// A bus is opened once, by periph.io (host.Init, then i2creg.Open), and
// shared by every device on it: Bus serialises transactions, locks one
// address for a whole poll (so polls of one chip from two poll groups never
// interleave), and counts transactions and errors. Any transaction error (a
// NACK, a timeout) gives the device's points comm_fault; a device that stops
// answering is then only probed every few polls, and the polls in between
// give stale, so one dead sensor never slows the others.
//
// The package and its drivers only ever read: the only bytes they write are
// register pointers, a chip's own measurement settings and conversion
// requests, and a generic device's configured command. They never change the
// bus speed, never close a bus they did not open, and never panic on what a
// device sends back.
package i2c
