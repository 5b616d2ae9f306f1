package bme280

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/edge"
)

// Register map (BME280 datasheet section 5.3, BMP280 section 4.3).
const (
	regID       = 0xD0
	regCalib00  = 0x88 // dig_T1 .. dig_P9, reserved, dig_H1 (0x88-0xA1)
	regCalib26  = 0xE1 // dig_H2 .. dig_H6 (0xE1-0xE7), BME280 only
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regConfig   = 0xF5
	regPress    = 0xF7 // press_msb .. hum_lsb

	idBMP280 = 0x58
	idBME280 = 0x60

	osrs4x    = 3 // oversampling x4 (osrs_x = 011)
	modeSleep = 0
	modeForce = 1
	tsb1000ms = 5 // t_sb = 101: 1000 ms (BME280) / 1000 ms (BMP280)

	statusMeasuring = 1 << 3
)

func ctrlMeas(osrsT, osrsP, mode byte) byte { return osrsT<<5 | osrsP<<2 | mode }

// calib holds the compensation words as the datasheet names them.
type calib struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1                             uint8
	H2                             int16
	H3                             uint8
	H4, H5                         int16
	H6                             int8
}

// The BMP280 datasheet's worked example (section 3.12), as DESIGN.md quotes it.
var datasheet = calib{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
}

const (
	adcT = 519888
	adcP = 415148
)

// bytes0x88 lays the words out little-endian at 0x88-0xA1.
func (c calib) bytes0x88() []byte {
	b := make([]byte, 0xA2-0x88)
	for i, v := range []uint16{c.T1, uint16(c.T2), uint16(c.T3), c.P1, uint16(c.P2), uint16(c.P3), uint16(c.P4),
		uint16(c.P5), uint16(c.P6), uint16(c.P7), uint16(c.P8), uint16(c.P9)} {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	b[0xA1-0x88] = c.H1
	return b
}

// bytes0xE1 lays out dig_H2..dig_H6 with the datasheet's 12-bit packing of
// H4 (0xE4[7:0], 0xE5[3:0]) and H5 (0xE5[7:4], 0xE6[7:0]).
func (c calib) bytes0xE1() []byte {
	b := make([]byte, 0xE8-0xE1)
	binary.LittleEndian.PutUint16(b, uint16(c.H2))
	b[2] = c.H3
	b[3] = byte(uint16(c.H4) >> 4)
	b[4] = byte(c.H4&0xF) | byte(c.H5&0xF)<<4
	b[5] = byte(uint16(c.H5) >> 4)
	b[6] = byte(c.H6)
	return b
}

// data lays out press (20 bit), temp (20 bit) and optionally hum (16 bit)
// as read from 0xF7.
func data(p, t uint32, h int) []byte {
	b := []byte{byte(p >> 12), byte(p >> 4), byte(p << 4), byte(t >> 12), byte(t >> 4), byte(t << 4)}
	if h >= 0 {
		b = append(b, byte(h>>8), byte(h))
	}
	return b
}

// The datasheet's double-precision compensation (BME280 section 8.1,
// BMP280 section 8.1), independent of periph's integer code.
func (c calib) float(adcT, adcP, adcH float64) (t, p, h float64) {
	v1 := (adcT/16384 - float64(c.T1)/1024) * float64(c.T2)
	v2 := (adcT/131072 - float64(c.T1)/8192) * (adcT/131072 - float64(c.T1)/8192) * float64(c.T3)
	tFine := v1 + v2
	t = tFine / 5120

	v1 = tFine/2 - 64000
	v2 = v1 * v1 * float64(c.P6) / 32768
	v2 += v1 * float64(c.P5) * 2
	v2 = v2/4 + float64(c.P4)*65536
	v1 = (float64(c.P3)*v1*v1/524288 + float64(c.P2)*v1) / 524288
	v1 = (1 + v1/32768) * float64(c.P1)
	p = 1048576 - adcP
	p = (p - v2/4096) * 6250 / v1
	v1 = float64(c.P9) * p * p / 2147483648
	v2 = p * float64(c.P8) / 32768
	p += (v1 + v2 + float64(c.P7)) / 16

	x := tFine - 76800
	x = (adcH - (float64(c.H4)*64 + float64(c.H5)/16384*x)) *
		(float64(c.H2) / 65536 * (1 + float64(c.H6)/67108864*x*(1+float64(c.H3)/67108864*x)))
	h = x * (1 - float64(c.H1)*x/524288)
	h = math.Max(0, math.Min(100, h))
	return t, p, h
}

func setupBMP280(addr uint16, c calib) []i2ctest.IO {
	cm := ctrlMeas(osrs4x, osrs4x, modeSleep)
	return []i2ctest.IO{
		{Addr: addr, W: []byte{regID}, R: []byte{idBMP280}},
		{Addr: addr, W: []byte{regCalib00}, R: c.bytes0x88()},
		{Addr: addr, W: []byte{regCtrlMeas, cm, regConfig, tsb1000ms << 5, regCtrlMeas, cm}},
	}
}

func senseOps(addr uint16, d []byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{regCtrlMeas, ctrlMeas(osrs4x, osrs4x, modeForce)}},
		{Addr: addr, W: []byte{regStatus}, R: []byte{0}},
		{Addr: addr, W: []byte{regPress}, R: d},
	}
}

func cat(ops ...[]i2ctest.IO) []i2ctest.IO {
	var all []i2ctest.IO
	for _, o := range ops {
		all = append(all, o...)
	}
	return all
}

func read(t *testing.T, s *Source, n int) []edge.Raw {
	t.Helper()
	out := make([]edge.Raw, n)
	s.Read(context.Background(), out)
	return out
}

func TestBMP280Datasheet(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: cat(
		setupBMP280(0x76, datasheet),
		// The first status read finds the measurement still running.
		[]i2ctest.IO{
			{Addr: 0x76, W: []byte{regCtrlMeas, ctrlMeas(osrs4x, osrs4x, modeForce)}},
			{Addr: 0x76, W: []byte{regStatus}, R: []byte{statusMeasuring}},
			{Addr: 0x76, W: []byte{regStatus}, R: []byte{0}},
			{Addr: 0x76, W: []byte{regPress}, R: data(adcP, adcT, -1)},
		},
		senseOps(0x76, data(adcP, adcT, -1)),
	)}
	o := DefaultOpts()
	o.Model = "bmp280"
	s, err := New(pb, 0x76, []string{Pressure, Temperature}, &o)
	if err != nil {
		t.Fatal(err)
	}
	wantT, wantP, _ := datasheet.float(adcT, adcP, 0)
	t.Logf("datasheet float path: %.4f °C, %.4f Pa", wantT, wantP)
	for poll := range 2 {
		out := read(t, s, 2)
		for i, r := range out {
			if r.Quality != edge.Good || r.Value.Kind != edge.Number {
				t.Fatalf("poll %d point %d: %v %v", poll, i, r.Quality, r.Err)
			}
		}
		p, temp := out[0].Value.Num, out[1].Value.Num
		t.Logf("poll %d: periph bmxx80: %.4f °C, %.4f Pa", poll, temp, p)
		if math.Abs(temp-25.08) > 0.005 {
			t.Errorf("temperature %.4f °C, want 25.08", temp)
		}
		if math.Abs(p-100653) > 1 {
			t.Errorf("pressure %.4f Pa, want 100653 ± 1", p)
		}
		if math.Abs(p-wantP) > 0.5 || math.Abs(temp-wantT) > 0.01 {
			t.Errorf("periph %.4f °C %.4f Pa, datasheet float path %.4f °C %.4f Pa", temp, p, wantT, wantP)
		}
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), `bmp280 0x76 on bus "playback"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestBME280Humidity(t *testing.T) {
	c := datasheet
	// Humidity words of a real chip.
	c.H1, c.H2, c.H3, c.H4, c.H5, c.H6 = 75, 366, 0, 309, 50, 30
	const adcH = 27000
	cm := ctrlMeas(osrs4x, osrs4x, modeSleep)
	pb := &i2ctest.Playback{DontPanic: true, Ops: cat(
		[]i2ctest.IO{
			{Addr: 0x77, W: []byte{regID}, R: []byte{idBME280}},
			{Addr: 0x77, W: []byte{regCalib00}, R: c.bytes0x88()},
			{Addr: 0x77, W: []byte{regCalib26}, R: c.bytes0xE1()},
			{Addr: 0x77, W: []byte{regCtrlMeas, cm, regCtrlHum, osrs4x, regConfig, tsb1000ms << 5, regCtrlMeas, cm}},
		},
		senseOps(0x77, data(adcP, adcT, adcH)),
	)}
	s, err := New(pb, 0x77, []string{Humidity, Temperature, Pressure}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := read(t, s, 3)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if r.Quality != edge.Good {
			t.Fatalf("point %d: %v %v", i, r.Quality, r.Err)
		}
	}
	wantT, wantP, wantH := c.float(adcT, adcP, adcH)
	h := out[0].Value.Num
	t.Logf("humidity %.3f %%RH (datasheet float %.3f), %.2f °C, %.2f Pa", h, wantH, out[1].Value.Num, out[2].Value.Num)
	if math.Abs(h-wantH) > 0.1 {
		t.Errorf("humidity %.3f %%RH, datasheet float path %.3f", h, wantH)
	}
	if math.Abs(out[1].Value.Num-wantT) > 0.01 || math.Abs(out[2].Value.Num-wantP) > 0.5 {
		t.Errorf("got %v %v, want %.2f %.2f", out[1].Value, out[2].Value, wantT, wantP)
	}
}

// A BMP280 answering where the config says bme280 gives humidity
// sensor_fault and its other measures as usual.
func TestHumidityOnBMP280(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: cat(setupBMP280(0x76, datasheet), senseOps(0x76, data(adcP, adcT, -1)))}
	// No humidity oversampling in the writes: the driver turns it off on a BMP280.
	s, err := New(pb, 0x76, []string{Temperature, Humidity}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Pressure is not read by any point, so ctrl_meas has osrs_p = 0.
	cm := ctrlMeas(osrs4x, 0, modeSleep)
	pb.Ops[2].W = []byte{regCtrlMeas, cm, regConfig, tsb1000ms << 5, regCtrlMeas, cm}
	pb.Ops[3].W = []byte{regCtrlMeas, ctrlMeas(osrs4x, 0, modeForce)}
	out := read(t, s, 2)
	if out[0].Quality != edge.Good || math.Abs(out[0].Value.Num-25.08) > 0.005 {
		t.Errorf("temperature: %v %v %v", out[0].Value, out[0].Quality, out[0].Err)
	}
	if out[1].Quality != edge.SensorFault || out[1].Err == nil || !strings.Contains(out[1].Err.Error(), "BMP280") {
		t.Errorf("humidity: %v %v", out[1].Quality, out[1].Err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// A chip that lost ctrl_hum (brown-out) reports the "skipped" pattern: the
// point is a sensor fault and the chip is set up again on the next poll.
func TestSkippedMeasurement(t *testing.T) {
	c := datasheet
	c.H1, c.H2, c.H4, c.H6 = 75, 366, 309, 30
	cm := ctrlMeas(osrs4x, osrs4x, modeSleep)
	setup := []i2ctest.IO{
		{Addr: 0x76, W: []byte{regID}, R: []byte{idBME280}},
		{Addr: 0x76, W: []byte{regCalib00}, R: c.bytes0x88()},
		{Addr: 0x76, W: []byte{regCalib26}, R: c.bytes0xE1()},
		{Addr: 0x76, W: []byte{regCtrlMeas, cm, regCtrlHum, osrs4x, regConfig, tsb1000ms << 5, regCtrlMeas, cm}},
	}
	pb := &i2ctest.Playback{DontPanic: true, Ops: cat(
		setup, senseOps(0x76, data(adcP, adcT, 0x8000)),
		setup, senseOps(0x76, data(adcP, adcT, 27000)),
	)}
	s, err := New(pb, 0x76, []string{Temperature, Humidity, Pressure}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := read(t, s, 2)
	if out[0].Quality != edge.Good || out[1].Quality != edge.SensorFault {
		t.Fatalf("poll 1: %v %v / %v %v", out[0].Quality, out[0].Err, out[1].Quality, out[1].Err)
	}
	t.Log(out[1].Err)
	out = read(t, s, 2)
	if out[0].Quality != edge.Good || out[1].Quality != edge.Good {
		t.Fatalf("poll 2: %v %v / %v %v", out[0].Quality, out[0].Err, out[1].Quality, out[1].Err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// Measurements turned off read their reset value (0x80000, 0x8000); that
// is not a fault and does not set the chip up again.
func TestTemperatureOnly(t *testing.T) {
	c := datasheet
	c.H1, c.H2, c.H4, c.H6 = 75, 366, 309, 30
	cm := ctrlMeas(osrs4x, 0, modeSleep)
	sense := []i2ctest.IO{
		{Addr: 0x76, W: []byte{regCtrlMeas, ctrlMeas(osrs4x, 0, modeForce)}},
		{Addr: 0x76, W: []byte{regStatus}, R: []byte{0}},
		{Addr: 0x76, W: []byte{regPress}, R: data(0x80000, adcT, 0x8000)},
	}
	pb := &i2ctest.Playback{DontPanic: true, Ops: cat(
		[]i2ctest.IO{
			{Addr: 0x76, W: []byte{regID}, R: []byte{idBME280}},
			{Addr: 0x76, W: []byte{regCalib00}, R: c.bytes0x88()},
			{Addr: 0x76, W: []byte{regCalib26}, R: c.bytes0xE1()},
			{Addr: 0x76, W: []byte{regCtrlMeas, cm, regCtrlHum, 0, regConfig, tsb1000ms << 5, regCtrlMeas, cm}},
		},
		sense, sense,
	)}
	s, err := New(pb, 0x76, []string{Temperature}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for poll := range 2 {
		if r := read(t, s, 1)[0]; r.Quality != edge.Good || math.Abs(r.Value.Num-25.08) > 0.005 {
			t.Fatalf("poll %d: %v %v %v", poll, r.Value, r.Quality, r.Err)
		}
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// Playback with no operations left fails every transaction, as a NACK does.
func TestNACK(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	s, err := New(pb, 0x77, []string{Temperature, Pressure}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := read(t, s, 2)
	for i, r := range out {
		if r.Quality != edge.CommFault || r.Err == nil {
			t.Fatalf("point %d: %v %v", i, r.Quality, r.Err)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, "0x77") || !strings.Contains(msg, `bus "playback"`) || !strings.Contains(msg, "reg 0xd0") {
			t.Errorf("error does not name address, bus and register: %s", msg)
		}
	}
	t.Log(out[0].Err)
}

// switchBus fails every transaction while down, like a chip that is
// unplugged, and counts the transactions tried.
type switchBus struct {
	*i2ctest.Playback
	mu    sync.Mutex
	down  bool
	tries int
}

func (b *switchBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	b.tries++
	down := b.down
	b.mu.Unlock()
	if down {
		return errors.New("i2c: no ACK")
	}
	return b.Playback.Tx(addr, w, r)
}

func TestBackoffAndRecovery(t *testing.T) {
	bus := &switchBus{Playback: &i2ctest.Playback{DontPanic: true, Ops: cat(
		setupBMP280(0x76, datasheet), senseOps(0x76, data(adcP, adcT, -1)),
		// After the outage the chip is set up again from scratch.
		setupBMP280(0x76, datasheet), senseOps(0x76, data(adcP, adcT, -1)),
	)}}
	o := DefaultOpts()
	o.ProbeEvery = 4
	s, err := New(bus, 0x76, []string{Temperature, Pressure}, &o)
	if err != nil {
		t.Fatal(err)
	}
	if q := read(t, s, 1)[0].Quality; q != edge.Good {
		t.Fatalf("first poll: %v", q)
	}
	bus.down = true
	before := bus.tries
	got := []edge.Quality{}
	for range 8 {
		got = append(got, read(t, s, 1)[0].Quality)
	}
	want := []edge.Quality{edge.CommFault, edge.Stale, edge.Stale, edge.Stale, edge.CommFault, edge.Stale, edge.Stale, edge.Stale}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("polls while down: %v, want %v", got, want)
		}
	}
	if n := bus.tries - before; n != 2 {
		t.Errorf("%d transactions while down, want 2 (one per probe)", n)
	}
	bus.down = false
	if r := read(t, s, 1)[0]; r.Quality != edge.Good || math.Abs(r.Value.Num-25.08) > 0.005 {
		t.Fatalf("after recovery: %v %v %v", r.Value, r.Quality, r.Err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// stuckChip is a BMP280 whose status register says "measuring" forever:
// periph's driver polls it in a loop, which the poll timeout must end.
type stuckChip struct{ reads int }

func (c *stuckChip) String() string                    { return "stuck" }
func (c *stuckChip) SetSpeed(f physic.Frequency) error { return nil }
func (c *stuckChip) Tx(addr uint16, w, r []byte) error {
	if len(w) == 0 || len(r) == 0 {
		return nil
	}
	switch w[0] {
	case regID:
		r[0] = idBMP280
	case regCalib00:
		copy(r, datasheet.bytes0x88())
	case regStatus:
		c.reads++
		r[0] = statusMeasuring
	}
	return nil
}

func TestStuckStatusTimesOut(t *testing.T) {
	o := DefaultOpts()
	o.Timeout = 100 * time.Millisecond
	chip := &stuckChip{}
	s, err := New(chip, 0x76, []string{Temperature}, &o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := read(t, s, 1)[0]
	if d := time.Since(start); d > time.Second {
		t.Errorf("poll took %s", d)
	}
	if r.Quality != edge.CommFault || !errors.Is(r.Err, devconn.ErrTimeout) {
		t.Errorf("%v %v", r.Quality, r.Err)
	}
	t.Logf("%d status reads in %s: %v", chip.reads, time.Since(start), r.Err)
}

func TestNewRejects(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	bmp := &Opts{Model: "bmp280"}
	for _, tc := range []struct {
		addr     uint16
		measures []string
		opts     *Opts
		want     string
	}{
		{0x48, []string{Temperature}, nil, "0x76 or 0x77"},
		{0x76, nil, nil, "no measures"},
		{0x76, []string{"dewpoint"}, nil, `unknown "dewpoint"`},
		{0x76, []string{Humidity}, bmp, "no humidity"},
		{0x76, []string{Temperature}, &Opts{Model: "bme680"}, "unknown model"},
		{0x76, []string{Temperature}, &Opts{Pressure: 9}, "oversampling"},
	} {
		_, err := New(pb, tc.addr, tc.measures, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(0x%02x, %v): %v, want %q", tc.addr, tc.measures, err, tc.want)
		}
	}
	if pb.Count != 0 {
		t.Error("New touched the bus")
	}
}

// A short out slice, or a longer one, never panics.
func TestOutLength(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	s, _ := New(pb, 0x76, []string{Temperature, Pressure}, nil)
	s.Read(context.Background(), nil)
	s.Read(context.Background(), make([]edge.Raw, 5))
}
