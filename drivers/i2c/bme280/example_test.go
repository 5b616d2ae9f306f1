package bme280_test

import (
	"context"
	"fmt"
	"log"
	"time"

	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/drivers/i2c/bme280"
	"github.com/hazwatch/edgecollector/edge"
)

func Example() {
	// The bus belongs to the caller; the source only borrows it.
	bus, err := edgei2c.Open("onboard", "/dev/i2c-1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	opts := bme280.DefaultOpts()
	src, err := bme280.New(bus, 0x76, []string{bme280.Temperature, bme280.Pressure, bme280.Humidity}, &opts)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := make([]edge.Raw, 3)
	src.Read(ctx, out)
	for i, unit := range []string{"°C", "Pa", "%RH"} {
		if out[i].Quality != edge.Good {
			fmt.Println(out[i].Quality, out[i].Err)
			continue
		}
		fmt.Printf("%.2f %s\n", out[i].Value.Num, unit)
	}
}
