// Package bme280 reads Bosch BME280 (temperature, pressure, humidity) and
// BMP280 (temperature, pressure) environment sensors on a shared I2C bus, as
// an edge.Source, through periph.io/x/devices/v3/bmxx80.
//
// Units of the raw values: temperature in °C, pressure in Pa (not hPa or kPa:
// a point's scale converts, e.g. scale 0.01 for hPa), humidity in %RH.
// periph's driver compensates with the datasheet's 32-bit integer formula for
// temperature (0.01 °C steps), the 64-bit integer formula for pressure (1/256
// Pa steps) and the 32-bit integer formula for humidity (1/1024 %RH steps).
// Each poll starts one forced-mode measurement and reads every data register
// in one burst, as the datasheet requires.
//
// Beyond periph's driver the source checks that the chip really measured: a
// data register holding the "skipped" pattern (0x80000 for temperature and
// pressure, 0x8000 for humidity, as after a brown-out reset that cleared
// ctrl_hum) gives sensor_fault and the chip is set up again on the next poll.
// A chip that stops answering gives comm_fault, is set up again from scratch
// (calibration read, settings written) when it answers, and is probed only
// every ProbeEvery polls meanwhile (those polls give stale).
//
// It never owns the bus: it never closes it or changes its speed, and never
// writes anything but the chip's measurement settings (ctrl_meas, ctrl_hum,
// config).
//
// Datasheets:
//   - BME280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf
//   - BMP280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp280-ds001.pdf
package bme280
