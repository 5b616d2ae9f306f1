// Package ads1115 reads the four single-ended inputs of a TI ADS1115
// (16-bit) or ADS1015 (12-bit) ADC on a shared I2C bus, as an edge.Source,
// through periph.io/x/devices/v3/ads1x15. Its main use is 4-20 mA loops from
// field transmitters (gas detectors, level and pressure transmitters) read
// across a shunt resistor.
//
// Loop mode (Opts.ShuntOhms > 0): the raw value is the loop current in mA,
// V/ShuntOhms. The collector maps it to the engineering range and applies
// NAMUR NE43 (below 3.6 mA or above 21 mA is a sensor fault) in
// edge.PointConf.Convert with Loop and Current set; this package does not
// judge the current. Voltage mode (ShuntOhms 0): the raw value is in volts.
//
// Gain and data rate. The gain is chosen so that the highest current that
// must be measured, MaxMilliamps (default 24 mA, above the NE43 fault limit so
// a high fault is measured, not clipped), fits: with the usual 150 Ω shunt
// 4-20 mA is 0.6-3.0 V and 24 mA is 3.6 V, which takes the ±4.096 V range
// (PGA gain 1): 125 µV (0.83 µA) per count on the ADS1115, 2 mV (13 µA) on
// the ADS1015. A 250 Ω shunt (1-5 V, 6 V at 24 mA) needs the ±6.144 V range
// and a 5 V supply: the inputs must stay below VDD + 0.3 V whatever the
// range. The data rate is 128 samples/s on both chips (the ADS1115's
// default, the ADS1015's slowest): about 8 ms per input, so four inputs
// take some 35 ms a poll.
//
// A reading at the end of the range (the ADC clipped) is a sensor_fault:
// the input is beyond what the ADC can measure. Each conversion is checked
// before its result is read: periph's driver only sleeps 1/data rate, but
// the chip's clock may be 10 % slow, which would read the previous
// conversion, perhaps of another input. The source polls the config
// register until the conversion is done and checks that it reads back the
// input, gain and rate just written (a chip that reset in between did not
// convert at all).
//
// It never owns the bus: it never closes it or changes its speed, and only
// writes the config register (single-shot conversion requests, comparator
// off).
//
// Datasheets:
//   - ADS1115: https://www.ti.com/lit/ds/symlink/ads1115.pdf
//   - ADS1015: https://www.ti.com/lit/ds/symlink/ads1015.pdf
package ads1115
