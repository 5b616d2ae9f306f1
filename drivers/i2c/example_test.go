package i2c_test

import (
	"context"
	"fmt"
	"log"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/edge"
)

// The collector opens each I2C bus once and builds one source per device
// and poll group. Here the opener is injected, as in the collector's tests.
func ExampleNewSource() {
	open := func(name string) (i2c.BusCloser, error) {
		return &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
			{Addr: 0x40, W: []byte{0x00}, R: []byte{0x01, 0xF4}},
		}}, nil
	}
	bus, err := edgei2c.Open("onboard", "/dev/i2c-1", open) // nil: periph.io's host drivers
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	src, err := edgei2c.NewSource(bus,
		edgei2c.Device{Name: "cabinet", Model: edgei2c.ModelGeneric, Address: 0x40},
		[]edgei2c.Point{{Code: "PT-101", Register: 0x00, Type: "uint16"}})
	if err != nil {
		log.Fatal(err)
	}
	out := make([]edge.Raw, 1)
	src.Read(context.Background(), out)
	fmt.Println(src, out[0].Value, out[0].Quality)
	// Output: i2c device 0x40 on bus "onboard" 500 good
}
