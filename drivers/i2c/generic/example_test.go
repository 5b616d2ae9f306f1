package generic_test

import (
	"context"
	"fmt"
	"log"
	"time"

	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/drivers/i2c/generic"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

// A sensor that converts on command 0xF3, needs 50 ms, then holds its
// result little-endian in register 0x00 and a status byte in 0x02.
func Example() {
	bus, err := edgei2c.Open("onboard", "1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	src, err := generic.New(bus, 0x40, []generic.Point{
		{Register: 0x00, Type: modbus.Uint16, Order: modbus.BADC},
		{Register: 0x02, Type: modbus.Bool, Bit: 0},
	}, &generic.Opts{Command: []byte{0xF3}, Wait: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	out := make([]edge.Raw, 2)
	src.Read(context.Background(), out)
	fmt.Println(src, out[0].Value, out[1].Value)
}

func ExampleDecode() {
	v, err := generic.Decode(generic.Point{Type: modbus.Float32, Order: modbus.DCBA}, []byte{0x00, 0x00, 0xAC, 0x41})
	fmt.Println(v, err)
	// Output: 21.5 <nil>
}
