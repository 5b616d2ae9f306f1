package ads1115_test

import (
	"context"
	"fmt"
	"log"

	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/drivers/i2c/ads1115"
	"github.com/hazwatch/edgecollector/edge"
)

// Two 4-20 mA gas detectors on inputs 0 and 1, each across a 150 Ω shunt.
func Example() {
	bus, err := edgei2c.Open("onboard", "1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	opts := ads1115.DefaultOpts()
	opts.ShuntOhms = 150
	src, err := ads1115.New(bus, 0x48, []int{0, 1}, &opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(src, "range ±", src.FullScale())

	// The collector compiles this from the point's config (loop: true,
	// raw_range: [4, 20], range: [0, 100]).
	lel := edge.PointConf{Loop: true, Current: true, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Scale: 1}
	out := make([]edge.Raw, 2)
	src.Read(context.Background(), out)
	for i, r := range out {
		v, q := lel.Convert(&r, false)
		fmt.Printf("input %d: %v mA -> %v %%LEL (%s)\n", i, r.Value, v, q)
	}
}
