package i2c

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/hazwatch/edgecollector/edge"
)

func TestNewSourceModels(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	bus := NewBus("onboard", pb)
	for _, tc := range []struct {
		dev  Device
		pts  []Point
		want string
	}{
		{Device{Model: ModelBME280, Address: 0x76}, []Point{{Measure: "temperature"}, {Measure: "humidity"}}, `bme280 0x76 on bus "onboard"`},
		{Device{Model: ModelBMP280, Address: 0x77}, []Point{{Measure: "pressure"}}, `bmp280 0x77 on bus "onboard"`},
		{Device{Model: ModelADS1115, Address: 0x48, ShuntOhms: 150}, []Point{{Channel: 3}}, `ads1115 0x48 on bus "onboard"`},
		{Device{Model: ModelADS1015, Address: 0x4B}, []Point{{Channel: 0}}, `ads1015 0x4b on bus "onboard"`},
		{Device{Model: ModelGeneric, Address: 0x40, WordOrder: "DCBA", Command: []byte{0xF3}, Wait: 50 * time.Millisecond},
			[]Point{{Register: 0xE3, Type: "uint16"}, {Register: 0, Type: "string", Length: 8, WordOrder: "ABCD"}}, `i2c device 0x40 on bus "onboard"`},
	} {
		s, err := NewSource(bus, tc.dev, tc.pts)
		if err != nil {
			t.Errorf("%s: %v", tc.dev.Model, err)
			continue
		}
		if s.String() != tc.want {
			t.Errorf("%s: String() = %q, want %q", tc.dev.Model, s, tc.want)
		}
	}
	if pb.Count != 0 {
		t.Error("NewSource touched the bus")
	}
}

func TestNewSourceRejects(t *testing.T) {
	bus := NewBus("onboard", &i2ctest.Playback{DontPanic: true})
	for _, tc := range []struct {
		dev  Device
		pts  []Point
		want string
	}{
		{Device{Name: "x", Model: "sht31", Address: 0x44}, []Point{{}}, `device "x": unknown I2C model "sht31"`},
		{Device{Name: "x", Model: ModelGeneric, Address: 0x78}, []Point{{Type: "uint16"}}, "out of range"},
		{Device{Name: "env", Model: ModelBMP280, Address: 0x76}, []Point{{Code: "TT-1", Measure: "temperature"}, {Code: "HT-1", Measure: "humidity"}}, `device "env": point "HT-1": a bmp280 has no humidity`},
		{Device{Name: "env", Model: ModelBME280, Address: 0x76}, []Point{{Code: "TT-1", Measure: "temp"}}, `point "TT-1": measure "temp"`},
		{Device{Name: "env", Model: ModelBME280, Address: 0x48}, []Point{{Measure: "temperature"}}, "0x76 or 0x77"},
		{Device{Name: "ai", Model: ModelADS1115, Address: 0x48}, []Point{{Code: "LT-1", Channel: 4}}, `point "LT-1": channel 4`},
		{Device{Name: "ai", Model: ModelADS1115, Address: 0x48, ShuntOhms: 1000}, []Point{{Channel: 0}}, "6.144"},
		{Device{Name: "g", Model: ModelGeneric, Address: 0x40}, []Point{{Code: "P-1", Register: 256, Type: "uint16"}}, `point "P-1": register 256`},
		{Device{Name: "g", Model: ModelGeneric, Address: 0x40}, []Point{{Code: "P-1", Type: "uint8"}}, `point "P-1": unknown data type "uint8"`},
		{Device{Name: "g", Model: ModelGeneric, Address: 0x40, WordOrder: "XYZW"}, []Point{{Code: "P-1", Type: "uint16"}}, `unknown word order`},
		{Device{Name: "g", Model: ModelGeneric, Address: 0x40}, []Point{{Code: "P-1", Type: "string"}}, `point "P-1": string of 0 bytes`},
		{Device{Name: "g", Model: ModelGeneric, Address: 0x40}, nil, "no points"},
	} {
		_, err := NewSource(bus, tc.dev, tc.pts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.dev, err, tc.want)
		}
	}
	if _, err := NewSource(nil, Device{Name: "x", Model: ModelGeneric, Address: 0x40}, []Point{{Type: "uint16"}}); err == nil {
		t.Error("nil bus accepted")
	}
}

// The builder's generic source reads through the shared bus with the
// device's default order and a point's own.
func TestNewSourceGenericRead(t *testing.T) {
	le := binary.LittleEndian.AppendUint32(nil, math.Float32bits(-12.25))
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x5A, W: []byte{0x10}, R: le},
		{Addr: 0x5A, W: []byte{0x20}, R: []byte{0x03, 0xE8}},
	}}
	s, err := NewSource(NewBus("onboard", pb), Device{Name: "g", Model: ModelGeneric, Address: 0x5A, WordOrder: "DCBA"},
		[]Point{{Register: 0x10, Type: "float32"}, {Register: 0x20, Type: "uint16", WordOrder: "ABCD"}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 2)
	s.Read(context.Background(), out)
	if out[0].Value != edge.Num(-12.25) || out[1].Value != edge.Num(1000) {
		t.Errorf("%v %v %v %v", out[0].Value, out[0].Err, out[1].Value, out[1].Err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}
