// Package chip is the vocabulary of the I2C devices the collector reads:
// the model names the config takes, what each model measures and the
// ranges of their settings. The config and the drivers share it, so a
// model, measure or channel the config accepts is one the drivers build.
//
// It imports nothing of the project, so any package may use it.
package chip

// Models.
const (
	BME280  = "bme280"  // Bosch temperature, pressure, humidity
	BMP280  = "bmp280"  // Bosch temperature, pressure
	ADS1115 = "ads1115" // TI 16-bit 4-channel ADC
	ADS1015 = "ads1015" // TI 12-bit 4-channel ADC
	Generic = "generic" // a register device read by data type
)

// Models lists every model, in the order the docs give them.
var Models = []string{BME280, BMP280, ADS1115, ADS1015, Generic}

// Measures of the Bosch sensors.
const (
	Temperature = "temperature" // °C
	Pressure    = "pressure"    // Pa
	Humidity    = "humidity"    // %RH, BME280 only
)

// Measures is what a model measures, in the order of the chip's data
// registers; nil for a model that has no named measures.
func Measures(model string) []string {
	switch model {
	case BME280:
		return []string{Temperature, Pressure, Humidity}
	case BMP280:
		return []string{Temperature, Pressure}
	}
	return nil
}

// Channels is the number of single-ended inputs of an ADC model (0-N-1);
// 0 for a model that is not an ADC.
func Channels(model string) int {
	switch model {
	case ADS1115, ADS1015:
		return 4
	}
	return 0
}

// IsADC reports whether the model is an ADC (inputs read by channel, a
// shunt for 4-20 mA loops).
func IsADC(model string) bool { return Channels(model) > 0 }

// Generic register devices.
const (
	MaxRegister = 255 // register addresses are one byte
	MaxString   = 32  // longest string one point reads, in bytes
	MaxBit      = 7   // a bool reads one bit (0-7) of a byte
)

// Addresses is the range of 7-bit addresses a model answers at, set by its
// address pins (BME280/BMP280: SDO; ADS1x15: ADDR); any valid address for a
// generic device.
func Addresses(model string) (lo, hi uint16) {
	switch model {
	case BME280, BMP280:
		return 0x76, 0x77
	case ADS1115, ADS1015:
		return 0x48, 0x4B
	}
	return 0x08, 0x77
}

// ADC inputs.
const (
	// ADCMaxVolts is the ADS1x15's largest input range, ±6.144 V.
	ADCMaxVolts = 6.144
	// LoopMaxMilliamps is the loop current an ADC input reads without
	// clipping in 4-20 mA mode (NAMUR NE43 headroom above 21 mA).
	LoopMaxMilliamps = 24
	// MaxShuntOhms is the largest shunt whose voltage at LoopMaxMilliamps
	// stays within ADCMaxVolts (256 Ω).
	MaxShuntOhms = ADCMaxVolts / LoopMaxMilliamps * 1000
)
