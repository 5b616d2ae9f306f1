// Package edge holds what happens at the edge between the instruments and the
// buffer: the Reading, Event and Message types every other package shares, the
// conversion of raw values to engineering values, report-on-change filtering,
// alarms, interlocks and the poll scheduler.
//
// Code in this package must never wait on the buffer, the uplink or the
// network inside a poll tick: readings and events leave a tick through a
// bounded queue, and interlock outputs are written before that hand-off.
package edge
